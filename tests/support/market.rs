//! Marketplace helpers: funding wallets, opening a merchant, buying and
//! redeeming cards, through the API.

use serde_json::{Value, json};

use super::TestApp;

/// An approved merchant with one branch and one product.
#[derive(Clone, Debug)]
pub struct Shop {
    /// Token of the staff member who registered it.
    pub staff_token: String,
    /// Their user id.
    pub staff_id: String,
    /// The merchant.
    pub merchant_id: String,
    /// Its branch.
    pub branch_id: String,
    /// Its product.
    pub product_id: String,
}

/// Card fields a buyer sees.
pub const CARD_FIELDS: &str = "id faceValue code pin status expiresAt redeemedAt owner { id } product { id } escrow { id status source amount serviceRateBps depositFee serviceFee merchantPayout merchant { id } }";

impl TestApp {
    /// Posts `query` and returns `data.{field}`, panicking with the body on error.
    pub async fn ok(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
        field: &str,
    ) -> Value {
        let body = self.gql(token, query, variables).await;
        assert!(body["errors"].is_null(), "{field} failed: {body}");
        body["data"][field].clone()
    }

    /// Credits `minor` to the wallet of `token` through the sandbox provider.
    pub async fn fund(&self, token: &str, minor: i64) {
        let topup = self
            .ok(
                Some(token),
                "mutation($i: TopupInput!) { initiateTopup(input: $i) { checkoutUrl } }",
                json!({ "i": { "amount": minor.to_string(), "idempotencyKey": uuid::Uuid::new_v4().to_string() } }),
                "initiateTopup",
            )
            .await;
        let url = format!(
            "{}/pay",
            topup["checkoutUrl"].as_str().expect("checkoutUrl")
        );
        let response = self.client.post(url).send().await.expect("sent");
        assert_eq!(response.status(), 200, "sandbox payment");
    }

    /// A new user (with `email`) who registers merchant `name`; an admin
    /// approves it; it gets a branch and a product at `denominations`.
    pub async fn open_shop(&self, email: &str, name: &str, denominations: &[i64]) -> Shop {
        let (staff_token, staff_id) = self.register(email, "Shop Keeper").await;
        let merchant = self
            .ok(
                Some(&staff_token),
                "mutation($i: RegisterMerchantInput!) { registerMerchant(input: $i) { id status } }",
                json!({ "i": { "name": name, "payoutAccount": "0123456789" } }),
                "registerMerchant",
            )
            .await;
        let merchant_id = merchant["id"].as_str().expect("merchant id").to_owned();
        let admin = self.admin_token().await;
        self.ok(
            Some(&admin),
            "mutation($id: ID!) { approveMerchant(id: $id) { status } }",
            json!({ "id": merchant_id }),
            "approveMerchant",
        )
        .await;
        let branch = self
            .ok(
                Some(&staff_token),
                "mutation($m: ID!, $i: BranchInput!) { addBranch(merchantId: $m, input: $i) { id } }",
                json!({ "m": merchant_id, "i": { "name": "Main", "address": "1 Marina, Lagos" } }),
                "addBranch",
            )
            .await;
        let product = self
            .ok(
                Some(&staff_token),
                "mutation($i: CardProductInput!) { createCardProduct(input: $i) { id } }",
                json!({ "i": {
                    "merchantId": merchant_id, "name": "Gift card", "description": "Spend in store",
                    "denominations": denominations.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "validityDays": 365,
                } }),
                "createCardProduct",
            )
            .await;
        Shop {
            staff_token,
            staff_id,
            merchant_id,
            branch_id: branch["id"].as_str().expect("branch id").to_owned(),
            product_id: product["id"].as_str().expect("product id").to_owned(),
        }
    }

    /// `purchaseCard`; the whole body.
    pub async fn buy(&self, token: &str, product_id: &str, face_value: i64, key: &str) -> Value {
        self.gql(
            Some(token),
            &format!("mutation($i: PurchaseCardInput!) {{ purchaseCard(input: $i) {{ {CARD_FIELDS} }} }}"),
            json!({ "i": { "productId": product_id, "faceValue": face_value.to_string(), "idempotencyKey": key } }),
        )
        .await
    }

    /// `redeemCard`; the whole body.
    pub async fn redeem(
        &self,
        token: &str,
        code: &str,
        pin: &str,
        branch_id: &str,
        key: &str,
    ) -> Value {
        self.gql(
            Some(token),
            "mutation($i: RedeemCardInput!) { redeemCard(input: $i) { id redeemedAt branch { id } card { id status code pin redeemedAt } escrow { id status depositFee serviceFee merchantPayout } } }",
            json!({ "i": { "code": code, "pin": pin, "branchId": branch_id, "idempotencyKey": key } }),
        )
        .await
    }

    /// `redeemCard` of `card` (as its owner saw it: code and pin) at
    /// `shop`'s branch by its staff; the whole body.
    pub async fn redeem_at(&self, shop: &Shop, card: &Value, key: &str) -> Value {
        self.redeem(
            &shop.staff_token,
            card["code"].as_str().expect("the owner's card has a code"),
            card["pin"].as_str().expect("the owner's card has a pin"),
            &shop.branch_id,
            key,
        )
        .await
    }

    /// [`Self::redeem_at`], panicking if it fails; the redemption.
    pub async fn redeem_card(&self, shop: &Shop, card: &Value, key: &str) -> Value {
        let body = self.redeem_at(shop, card, key).await;
        assert!(body["errors"].is_null(), "redeemCard failed: {body}");
        body["data"]["redeemCard"].clone()
    }

    /// The balance of a wallet as its owner sees it through `query`
    /// (e.g. `me { wallet { balance } }`), as an integer.
    pub async fn my_balance(&self, token: &str) -> i64 {
        let me = self
            .ok(
                Some(token),
                "{ me { wallet { balance } } }",
                json!({}),
                "me",
            )
            .await;
        me["wallet"]["balance"]
            .as_str()
            .expect("balance")
            .parse()
            .expect("integer balance")
    }

    /// The merchant wallet balance, as staff see it.
    pub async fn merchant_balance(&self, token: &str, merchant_id: &str) -> i64 {
        let merchant = self
            .ok(
                Some(token),
                "query($id: ID!) { merchant(id: $id) { wallet { balance } } }",
                json!({ "id": merchant_id }),
                "merchant",
            )
            .await;
        merchant["wallet"]["balance"]
            .as_str()
            .expect("merchant balance")
            .parse()
            .expect("integer balance")
    }
}

/// The balance of a platform account (sum of its entries).
pub async fn platform_balance(app: &TestApp, kind: &str) -> i64 {
    super::scalar(
        &app.db,
        &format!(
            "SELECT coalesce(sum(CASE direction WHEN 'CREDIT' THEN amount ELSE -amount END), 0)::bigint \
             FROM ledger.entries e JOIN ledger.accounts a ON a.id = e.account_id WHERE a.kind = '{kind}'"
        ),
    )
    .await
}

/// Asserts the ledger invariants of FLOWS.md §3: all accounts sum to zero,
/// no wallet is negative, and escrow holding equals the RESERVED escrows.
pub async fn assert_ledger_sound(app: &TestApp) {
    let total = giftdrop_domain::ledger::total(&app.db)
        .await
        .expect("total");
    assert_eq!(total, 0, "the ledger sums to zero");
    let negative = super::scalar(
        &app.db,
        "SELECT count(*) FROM ledger.accounts WHERE kind IN ('USER', 'MERCHANT') AND balance < 0",
    )
    .await;
    assert_eq!(negative, 0, "no negative wallet");
    let reserved = super::scalar(
        &app.db,
        "SELECT coalesce(sum(amount), 0)::bigint FROM giftcard.escrows WHERE status = 'RESERVED'",
    )
    .await;
    assert_eq!(
        platform_balance(app, "ESCROW_HOLDING").await,
        reserved,
        "escrow holding equals the RESERVED escrows"
    );
    let pending = super::scalar(
        &app.db,
        "SELECT coalesce(sum(amount), 0)::bigint FROM ledger.payouts WHERE status = 'PENDING'",
    )
    .await;
    assert_eq!(
        platform_balance(app, "PAYOUTS_IN_FLIGHT").await,
        pending,
        "payouts in flight equal the PENDING payouts"
    );
    let drift = super::scalar(
        &app.db,
        "SELECT count(*) FROM ledger.accounts a WHERE a.kind IN ('USER', 'MERCHANT') AND a.balance <> \
         (SELECT coalesce(sum(CASE direction WHEN 'CREDIT' THEN amount ELSE -amount END), 0) FROM ledger.entries e WHERE e.account_id = a.id)",
    )
    .await;
    assert_eq!(
        drift, 0,
        "every wallet balance equals the sum of its entries"
    );
}
