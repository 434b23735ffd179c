//! Setting the market up through the API: merchant, tills, funded buyers.

use super::*;

/// The merchant (approved by the admin), its branch and a product of the
/// one denomination `face_value`.
pub(crate) async fn setup_market(
    base_url: &str,
    admin_email: &str,
    admin_password: &str,
    face_value: u64,
) -> Result<Market> {
    let admin = Api::new(base_url)?;
    let token = admin.login(admin_email, admin_password).await?;
    let admin = admin.signed_in(token);
    let owner = Api::new(base_url)?;
    let session = owner.register().await?;
    let owner_token = session.token;
    let owner = owner.signed_in(owner_token.clone());

    let suffix = Uuid::new_v4().simple().to_string();
    let input = json!({ "name": format!("Bench Market {suffix}"), "payoutAccount": "0123456789" });
    let data = owner
        .execute(REGISTER_MERCHANT, json!({ "i": input }))
        .await
        .context("registerMerchant")?;
    let merchant_id = string_at(&data, "/registerMerchant/id")?;
    let data = admin
        .execute(APPROVE_MERCHANT, json!({ "id": merchant_id }))
        .await
        .context("approveMerchant")?;
    let status = string_at(&data, "/approveMerchant/status")?;
    ensure!(status == "ACTIVE", "approveMerchant left it {status}");
    let service_rate = data
        .pointer("/approveMerchant/serviceRateBps")
        .and_then(Value::as_u64)
        .with_context(|| format!("no serviceRateBps in {data}"))?;

    let input = json!({ "name": "Till row", "address": "1 Bench Street" });
    let data = owner
        .execute(ADD_BRANCH, json!({ "m": merchant_id, "i": input }))
        .await
        .context("addBranch")?;
    let branch_id = string_at(&data, "/addBranch/id")?;

    let face = face_value.to_string();
    let input = json!({
        "merchantId": merchant_id,
        "name": "Bench card",
        "description": "Bought and redeemed by giftdrop-bench",
        "denominations": [face],
        "validityDays": VALIDITY_DAYS,
    });
    let data = owner
        .execute(CREATE_PRODUCT, json!({ "i": input }))
        .await
        .context("createCardProduct")?;
    ensure!(
        data.pointer("/createCardProduct/active") == Some(&Value::Bool(true))
            && data.pointer("/createCardProduct/denominations") == Some(&json!([face])),
        "createCardProduct gave {data}"
    );
    let product_id = string_at(&data, "/createCardProduct/id")?;

    let data = owner
        .execute("{ platform { depositFeeBps } }", json!({}))
        .await
        .context("platform")?;
    let deposit_fee = data
        .pointer("/platform/depositFeeBps")
        .and_then(Value::as_u64)
        .with_context(|| format!("no depositFeeBps in {data}"))?;
    Ok(Market {
        owner,
        owner_token,
        merchant_id,
        branch_id,
        product_id,
        payout: merchant_payout(face_value, deposit_fee, service_rate)?,
    })
}

/// `amount - depositFee - serviceFee` of FLOWS.md §3.
pub(super) fn merchant_payout(
    amount: u64,
    deposit_fee_bps: u64,
    service_rate_bps: u64,
) -> Result<u64> {
    let half_up = |value: u128, bps: u64| (value * u128::from(bps) + 5_000) / 10_000;
    let amount = u128::from(amount);
    let deposit_fee = half_up(amount, deposit_fee_bps);
    let net = amount
        .checked_sub(deposit_fee)
        .context("deposit fee above the amount")?;
    let payout = net
        .checked_sub(half_up(net, service_rate_bps))
        .context("service fee above the amount")?;
    u64::try_from(payout).context("payout out of range")
}

/// `count` staff of the merchant, signed in: its owner and new users it
/// adds.
pub(super) async fn setup_tills(base_url: &str, market: &Market, count: usize) -> Result<Vec<Api>> {
    let added = stream::iter(1..count)
        .map(|_| async {
            let till = Api::new(base_url)?;
            let session = till.register().await?;
            market
                .owner
                .execute(
                    ADD_STAFF,
                    json!({ "m": market.merchant_id, "e": session.email }),
                )
                .await
                .context("addMerchantStaff")?;
            Ok::<_, anyhow::Error>(till.signed_in(session.token))
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    // The owner tills too, on a connection of its own.
    let owner = Api::new(base_url)?.signed_in(market.owner_token.clone());
    Ok(std::iter::once(owner).chain(added).collect())
}

/// `count` buyers, signed in, each with `funding` in its wallet.
pub(super) async fn setup_buyers(base_url: &str, funding: u64, count: usize) -> Result<Vec<Api>> {
    // The sandbox checkout is not GraphQL: a plain client posts to it.
    let checkout = reqwest::Client::builder()
        .build()
        .context("building the HTTP client")?;
    let checkout = &checkout;
    stream::iter(0..count)
        .map(|_| async move {
            let api = Api::new(base_url)?;
            let session: Session = api.register().await?;
            let api = api.signed_in(session.token);
            fund(&api, checkout, base_url, funding)
                .await
                .with_context(|| format!("funding buyer {}", session.user_id))?;
            Ok::<_, anyhow::Error>(api)
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await
}

/// Tops the wallet up with `amount` through the sandbox checkout and checks
/// the balance.
pub(crate) async fn fund(
    api: &Api,
    checkout: &reqwest::Client,
    base_url: &str,
    amount: u64,
) -> Result<()> {
    let amount = amount.to_string();
    let input = json!({ "amount": amount, "idempotencyKey": key() });
    let data = api
        .execute(INITIATE_TOPUP, json!({ "i": input }))
        .await
        .context("initiateTopup")?;
    ensure!(
        string_at(&data, "/initiateTopup/status")? == "PENDING"
            && string_at(&data, "/initiateTopup/amount")? == amount,
        "initiateTopup gave {data}"
    );
    let url = string_at(&data, "/initiateTopup/checkoutUrl")?;
    let url = if url.starts_with('/') {
        format!("{}{url}/pay", base_url.trim_end_matches('/'))
    } else {
        format!("{url}/pay")
    };
    let response = checkout
        .post(&url)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let body = response.text().await.context("reading the checkout")?;
    ensure!(
        status == reqwest::StatusCode::OK && body.contains(r#""outcome":"credited""#),
        "POST {url} answered {status}: {body}"
    );
    let balance = balance(api).await?;
    ensure!(
        balance == amount,
        "the wallet holds {balance} after a topup of {amount}"
    );
    Ok(())
}

pub(super) async fn balance(api: &Api) -> Result<String> {
    let data = api.execute(BALANCE, json!({})).await.context("balance")?;
    string_at(&data, "/me/wallet/balance")
}

/// A fresh idempotency key.
pub(crate) fn key() -> String {
    format!("bench-{}", Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merchant_payout_follows_the_contract() {
        // FLOWS.md §3: A = 500000, d = 150, s = 500.
        assert_eq!(merchant_payout(500_000, 150, 500).ok(), Some(467_875));
        // 5000: depositFee 75, serviceFee round(4925 * 5%) = 246.25 -> 246.
        assert_eq!(merchant_payout(5_000, 150, 500).ok(), Some(4_679));
        assert_eq!(merchant_payout(1, 0, 0).ok(), Some(1));
    }
}
