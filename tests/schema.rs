//! The served schema is the public contract: snapshot it, so any change to
//! it is deliberate and reviewed.

use crate::support::spawn_app;

#[tokio::test(crate = "crate::support::harness")]
async fn the_served_sdl_matches_the_snapshot() {
    let app = spawn_app().await;
    let schema = giftdrop_graphql::build_schema(
        app.running().services.clone(),
        giftdrop_graphql::SchemaOptions::default(),
    );
    insta::assert_snapshot!("schema", schema.sdl());
}
