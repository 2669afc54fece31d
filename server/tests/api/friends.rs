//! Friends over HTTP: requests, the 24-hour rule, expiry, the list, categories, concurrency.

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error, items, TestApp, TestResult, User};

backend_tests!(
    request_and_accept,
    request_refusals,
    cooldown_is_24_hours_whatever_the_outcome,
    mutual_requests_befriend_at_once,
    only_the_recipient_answers_only_pending,
    reject_and_ignore,
    requests_expire_at_once_and_the_sweeper_stores_it,
    request_lists_page_newest_first,
    friend_list_pages_and_filters,
    friend_details_update_and_delete,
    categories,
    concurrent_accepts_leave_one_friendship,
    requests_racing_deletes_stay_consistent,
);

const DAY: i64 = 86_400_000;

async fn send(app: &TestApp, from: &User, to: &User, msg: &str) -> TestResult<(StatusCode, Value)> {
    app.post("/api/v1/friend/request", Some(&from.token), json!({"to_user_id": to.id, "message": msg})).await
}

async fn answer(app: &TestApp, who: &User, id: i64, body: Value) -> TestResult<(StatusCode, Value)> {
    app.put(&format!("/api/v1/friend/request/{id}"), &who.token, body).await
}

async fn friend_ids(app: &TestApp, who: &User) -> TestResult<Vec<i64>> {
    let (s, r) = app.get("/api/v1/friends?size=100", &who.token).await?;
    assert_eq!(s, StatusCode::OK, "{r}");
    Ok(items(&r)?.iter().filter_map(|f| f["user"]["id"].as_i64()).collect())
}

async fn request_and_accept(app: TestApp) -> TestResult {
    let (a, b) = (app.user("alice").await?, app.user("bob").await?);
    let (s, r) = send(&app, &a, &b, "  it's Alice from work  ").await?;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["status"], "pending");
    assert_eq!(r["message"], "it's Alice from work");
    assert_eq!(r["user"]["username"], "bob");
    let id = r["id"].as_i64().ok_or("id")?;

    let (_, inc) = app.get("/api/v1/friend/requests?direction=incoming", &b.token).await?;
    let inc = items(&inc)?;
    assert_eq!(inc.len(), 1);
    assert_eq!(inc[0]["id"], id);
    assert_eq!(inc[0]["user"]["username"], "alice");
    assert!(inc[0]["user"].get("phone").is_none());
    let (_, out) = app.get("/api/v1/friend/requests?direction=outgoing&status=pending", &a.token).await?;
    assert_eq!(items(&out)?.len(), 1);

    // Accept into a custom category with a remark.
    let (_, cat) = app.post("/api/v1/friend/categories", Some(&b.token), json!({"name": "Work"})).await?;
    let (s, r) =
        answer(&app, &b, id, json!({"action": "accept", "category_id": cat["id"], "remark": "Alice (work)"})).await?;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "accepted");

    let (_, bf) = app.get(&format!("/api/v1/friends/{}", a.id), &b.token).await?;
    assert_eq!(bf["category"]["name"], "Work");
    assert_eq!(bf["remark"], "Alice (work)");
    assert_eq!(bf["dnd"], false);
    assert!(bf["since"].as_i64().is_some());
    assert_eq!(bf["online"], false, "nobody is connected: {bf}");
    let (_, af) = app.get(&format!("/api/v1/friends/{}", b.id), &a.token).await?;
    assert_eq!(af["category"]["name"], "Friends");
    assert!(af["remark"].is_null());

    let (_, out) = app.get("/api/v1/friend/requests?direction=outgoing&status=accepted", &a.token).await?;
    assert_eq!(items(&out)?.len(), 1);
    Ok(())
}

async fn request_refusals(app: TestApp) -> TestResult {
    let (a, b) = (app.user("alice").await?, app.user("bob").await?);
    assert_error(&send(&app, &a, &a, "me").await?, StatusCode::BAD_REQUEST, "cannot_friend_self");
    let ghost = User { id: 987_654, ..b.clone() };
    assert_error(&send(&app, &a, &ghost, "boo").await?, StatusCode::NOT_FOUND, "user_not_found");
    assert_error(&send(&app, &a, &b, &"m".repeat(201)).await?, StatusCode::UNPROCESSABLE_ENTITY, "invalid_message");
    let (s, _) = send(&app, &a, &b, &"m".repeat(200)).await?;
    assert_eq!(s, StatusCode::CREATED);
    let got = send(&app, &a, &b, "again").await?;
    assert_error(&got, StatusCode::TOO_MANY_REQUESTS, "request_too_soon");
    let retry = got.1["retry_after"].as_i64().ok_or("retry_after")?;
    assert!((86_000..=86_400).contains(&retry), "{retry}");

    let c = app.user("carol").await?;
    app.befriend(&a, &c).await?;
    assert_error(&send(&app, &a, &c, "hi").await?, StatusCode::CONFLICT, "already_friends");
    assert_error(&send(&app, &c, &a, "hi").await?, StatusCode::CONFLICT, "already_friends");
    assert_error(
        &app.post("/api/v1/friend/request", Some(&a.token), json!({"to_user_id": "x"})).await?,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    Ok(())
}

async fn cooldown_is_24_hours_whatever_the_outcome(app: TestApp) -> TestResult {
    let (a, b) = (app.user("alice").await?, app.user("bob").await?);
    let (_, r) = send(&app, &a, &b, "1").await?;
    let (s, _) = answer(&app, &b, r["id"].as_i64().ok_or("id")?, json!({"action": "reject"})).await?;
    assert_eq!(s, StatusCode::OK);
    // Rejected a minute ago: still too soon.
    app.clock.advance(60_000);
    let got = send(&app, &a, &b, "2").await?;
    assert_error(&got, StatusCode::TOO_MANY_REQUESTS, "request_too_soon");
    // One second before the 24 hours: too soon; after them: allowed.
    app.clock.advance(DAY - 60_000 - 1_000);
    let got = send(&app, &a, &b, "3").await?;
    assert_error(&got, StatusCode::TOO_MANY_REQUESTS, "request_too_soon");
    assert!(got.1["retry_after"].as_i64() <= Some(1));
    app.clock.advance(1_000);
    let (s, r) = send(&app, &a, &b, "4").await?;
    assert_eq!(s, StatusCode::CREATED, "{r}");

    // A request still pending after 24 hours is superseded by the new one (one pending per pair).
    app.clock.advance(DAY);
    let (s, _) = send(&app, &a, &b, "5").await?;
    assert_eq!(s, StatusCode::CREATED);
    let (_, pend) = app.get("/api/v1/friend/requests?direction=incoming&status=pending", &b.token).await?;
    let pend = items(&pend)?;
    assert_eq!(pend.len(), 1);
    assert_eq!(pend[0]["message"], "5");
    // The other direction has its own cooldown.
    let (s, r) = send(&app, &b, &a, "hi").await?;
    assert_eq!(s, StatusCode::OK, "mutual: {r}");
    Ok(())
}

async fn mutual_requests_befriend_at_once(app: TestApp) -> TestResult {
    let (a, b) = (app.user("alice").await?, app.user("bob").await?);
    let (s, r1) = send(&app, &a, &b, "hi bob").await?;
    assert_eq!(s, StatusCode::CREATED);
    let (s, r2) = send(&app, &b, &a, "hi alice").await?;
    assert_eq!(s, StatusCode::OK, "{r2}");
    assert_eq!(r2["status"], "accepted");
    assert_eq!(friend_ids(&app, &a).await?, [b.id]);
    assert_eq!(friend_ids(&app, &b).await?, [a.id]);
    // Alice's original request is accepted too: it can no longer be answered.
    let got = answer(&app, &b, r1["id"].as_i64().ok_or("id")?, json!({"action": "accept"})).await?;
    assert_error(&got, StatusCode::CONFLICT, "request_not_pending");
    Ok(())
}

async fn only_the_recipient_answers_only_pending(app: TestApp) -> TestResult {
    let (a, b, c) = (app.user("alice").await?, app.user("bob").await?, app.user("carol").await?);
    let (_, r) = send(&app, &a, &b, "hi").await?;
    let id = r["id"].as_i64().ok_or("id")?;
    // The sender and a third user cannot act on it, and cannot tell it exists.
    assert_error(&answer(&app, &a, id, json!({"action": "accept"})).await?, StatusCode::NOT_FOUND, "request_not_found");
    assert_error(&answer(&app, &c, id, json!({"action": "accept"})).await?, StatusCode::NOT_FOUND, "request_not_found");
    assert_error(
        &answer(&app, &b, 999_999, json!({"action": "accept"})).await?,
        StatusCode::NOT_FOUND,
        "request_not_found",
    );
    assert_error(&answer(&app, &b, id, json!({"action": "maybe"})).await?, StatusCode::BAD_REQUEST, "invalid_action");
    // Someone else's category.
    let (_, cat) = app.post("/api/v1/friend/categories", Some(&c.token), json!({"name": "Mine"})).await?;
    assert_error(
        &answer(&app, &b, id, json!({"action": "accept", "category_id": cat["id"]})).await?,
        StatusCode::NOT_FOUND,
        "category_not_found",
    );
    let (s, _) = answer(&app, &b, id, json!({"action": "accept"})).await?;
    assert_eq!(s, StatusCode::OK);
    for action in ["accept", "reject", "ignore"] {
        assert_error(
            &answer(&app, &b, id, json!({"action": action})).await?,
            StatusCode::CONFLICT,
            "request_not_pending",
        );
    }
    Ok(())
}

async fn reject_and_ignore(app: TestApp) -> TestResult {
    let (a, b, c) = (app.user("alice").await?, app.user("bob").await?, app.user("carol").await?);
    let (_, r) = send(&app, &a, &b, "hi").await?;
    let (s, rr) = answer(&app, &b, r["id"].as_i64().ok_or("id")?, json!({"action": "reject"})).await?;
    assert_eq!((s, rr["status"].as_str()), (StatusCode::OK, Some("rejected")));
    let (_, out) = app.get("/api/v1/friend/requests?direction=outgoing&status=rejected", &a.token).await?;
    assert_eq!(items(&out)?.len(), 1);
    assert!(friend_ids(&app, &a).await?.is_empty());

    // Ignored: the recipient files it as ignored, the sender still sees it pending; it can be
    // accepted later.
    let (_, r) = send(&app, &c, &b, "hey").await?;
    let id = r["id"].as_i64().ok_or("id")?;
    let (s, _) = answer(&app, &b, id, json!({"action": "ignore"})).await?;
    assert_eq!(s, StatusCode::OK);
    let (_, inc) = app.get("/api/v1/friend/requests?direction=incoming&status=pending", &b.token).await?;
    assert!(items(&inc)?.is_empty());
    let (_, inc) = app.get("/api/v1/friend/requests?direction=incoming&status=ignored", &b.token).await?;
    assert_eq!(items(&inc)?.len(), 1);
    let (_, out) = app.get("/api/v1/friend/requests?direction=outgoing", &c.token).await?;
    assert_eq!(items(&out)?[0]["status"], "pending");
    let (s, _) = answer(&app, &b, id, json!({"action": "accept"})).await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(friend_ids(&app, &b).await?, [c.id]);
    Ok(())
}

async fn requests_expire_at_once_and_the_sweeper_stores_it(app: TestApp) -> TestResult {
    let (a, b) = (app.user("alice").await?, app.user("bob").await?);
    let (_, r) = send(&app, &a, &b, "hi").await?;
    let id = r["id"].as_i64().ok_or("id")?;
    app.clock.advance(7 * DAY - 1_000);
    let (_, inc) = app.get("/api/v1/friend/requests?direction=incoming&status=pending", &b.token).await?;
    assert_eq!(items(&inc)?.len(), 1);

    app.clock.advance(1_000);
    // Expired in every list at once, without a sweep.
    let (_, inc) = app.get("/api/v1/friend/requests?direction=incoming&status=pending", &b.token).await?;
    assert!(items(&inc)?.is_empty());
    let (_, inc) = app.get("/api/v1/friend/requests?direction=incoming&status=expired", &b.token).await?;
    assert_eq!(items(&inc)?.len(), 1);
    let (_, out) = app.get("/api/v1/friend/requests?direction=outgoing", &a.token).await?;
    assert_eq!(items(&out)?[0]["status"], "expired");
    let got = answer(&app, &b, id, json!({"action": "accept"})).await?;
    assert_error(&got, StatusCode::CONFLICT, "request_not_pending");
    assert!(got.1["message"].as_str().is_some_and(|m| m.contains("expired")));

    // The sweeper stores it; a second sweep has nothing left to do.
    assert_eq!(server::tasks::sweep_friend_requests(&app.state).await, 1);
    assert_eq!(server::tasks::sweep_friend_requests(&app.state).await, 0);
    let (_, inc) = app.get("/api/v1/friend/requests?direction=incoming&status=expired", &b.token).await?;
    assert_eq!(items(&inc)?[0]["id"], id);
    Ok(())
}

async fn request_lists_page_newest_first(app: TestApp) -> TestResult {
    let me = app.user("target").await?;
    let mut senders = Vec::new();
    for i in 0..5 {
        let u = app.user(&format!("sender{i}")).await?;
        let (s, _) = send(&app, &u, &me, &format!("m{i}")).await?;
        assert_eq!(s, StatusCode::CREATED);
        app.clock.advance(1_000);
        senders.push(u);
    }
    let mut seen = Vec::new();
    for page in 1..=3 {
        let (_, r) =
            app.get(&format!("/api/v1/friend/requests?direction=incoming&size=2&page={page}"), &me.token).await?;
        assert_eq!(r["has_more"], page < 3, "{r}");
        seen.extend(items(&r)?.iter().filter_map(|x| x["message"].as_str().map(str::to_owned)));
    }
    assert_eq!(seen, ["m4", "m3", "m2", "m1", "m0"]);
    let (_, r) = app.get("/api/v1/friend/requests?direction=incoming&size=2&page=4", &me.token).await?;
    assert!(items(&r)?.is_empty());
    assert_eq!(r["has_more"], false);
    assert_error(
        &app.get("/api/v1/friend/requests?direction=sideways", &me.token).await?,
        StatusCode::BAD_REQUEST,
        "invalid_direction",
    );
    assert_error(
        &app.get("/api/v1/friend/requests?status=lost", &me.token).await?,
        StatusCode::BAD_REQUEST,
        "invalid_status",
    );
    Ok(())
}

async fn friend_list_pages_and_filters(app: TestApp) -> TestResult {
    let me = app.user("hub").await?;
    let (_, work) = app.post("/api/v1/friend/categories", Some(&me.token), json!({"name": "Work"})).await?;
    let mut ids = Vec::new();
    for i in 0..5 {
        let u = app.user(&format!("friend{i}")).await?;
        app.befriend(&me, &u).await?;
        app.clock.advance(1_000);
        if i % 2 == 0 {
            let (s, _) =
                app.patch(&format!("/api/v1/friends/{}", u.id), &me.token, json!({"category_id": work["id"]})).await?;
            assert_eq!(s, StatusCode::OK);
        }
        ids.push(u.id);
    }
    // Pages of 2 walk every friend once, in a stable order.
    let mut walked = Vec::new();
    for page in 1..=3 {
        let (_, r) = app.get(&format!("/api/v1/friends?size=2&page={page}"), &me.token).await?;
        assert_eq!(r["has_more"], page < 3);
        walked.extend(items(&r)?.iter().filter_map(|f| f["user"]["id"].as_i64()));
    }
    assert_eq!(walked, ids);
    let (_, r) = app.get("/api/v1/friends?size=2&page=9", &me.token).await?;
    assert!(items(&r)?.is_empty());
    // Exactly the size: no more.
    let (_, r) = app.get("/api/v1/friends?size=5", &me.token).await?;
    assert_eq!((items(&r)?.len(), &r["has_more"]), (5, &json!(false)));

    let (_, r) = app.get(&format!("/api/v1/friends?category_id={}", work["id"]), &me.token).await?;
    let in_work: Vec<i64> = items(&r)?.iter().filter_map(|f| f["user"]["id"].as_i64()).collect();
    assert_eq!(in_work, [ids[0], ids[2], ids[4]]);
    // Another user's category is not found.
    let other = app.user("other").await?;
    let (_, oc) = app.post("/api/v1/friend/categories", Some(&other.token), json!({"name": "X"})).await?;
    assert_error(
        &app.get(&format!("/api/v1/friends?category_id={}", oc["id"]), &me.token).await?,
        StatusCode::NOT_FOUND,
        "category_not_found",
    );
    assert_error(&app.get("/api/v1/friends?size=0", &me.token).await?, StatusCode::BAD_REQUEST, "invalid_size");
    Ok(())
}

async fn friend_details_update_and_delete(app: TestApp) -> TestResult {
    let (a, b, c) = (app.user("alice").await?, app.user("bob").await?, app.user("carol").await?);
    app.befriend(&a, &b).await?;
    assert_error(&app.get(&format!("/api/v1/friends/{}", c.id), &a.token).await?, StatusCode::NOT_FOUND, "not_friends");

    let (s, f) =
        app.patch(&format!("/api/v1/friends/{}", b.id), &a.token, json!({"remark": "Bobby", "dnd": true})).await?;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!((f["remark"].as_str(), f["dnd"].as_bool()), (Some("Bobby"), Some(true)));
    // Per side: Bob's view of Alice is unchanged.
    let (_, g) = app.get(&format!("/api/v1/friends/{}", a.id), &b.token).await?;
    assert_eq!((g["remark"].is_null(), g["dnd"].as_bool()), (true, Some(false)));
    // remark: null clears it; absent fields stay.
    let (_, f) = app.patch(&format!("/api/v1/friends/{}", b.id), &a.token, json!({"remark": null})).await?;
    assert_eq!((f["remark"].is_null(), f["dnd"].as_bool()), (true, Some(true)));
    assert_error(
        &app.patch(&format!("/api/v1/friends/{}", b.id), &a.token, json!({"remark": "r".repeat(65)})).await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_remark",
    );
    let (_, cc) = app.post("/api/v1/friend/categories", Some(&c.token), json!({"name": "Carols"})).await?;
    assert_error(
        &app.patch(&format!("/api/v1/friends/{}", b.id), &a.token, json!({"category_id": cc["id"]})).await?,
        StatusCode::NOT_FOUND,
        "category_not_found",
    );
    assert_error(
        &app.patch(&format!("/api/v1/friends/{}", c.id), &a.token, json!({"dnd": true})).await?,
        StatusCode::NOT_FOUND,
        "not_friends",
    );

    // Delete removes both sides.
    let (s, _) = app.delete(&format!("/api/v1/friends/{}", b.id), &a.token).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(friend_ids(&app, &a).await?.is_empty());
    assert!(friend_ids(&app, &b).await?.is_empty());
    assert_error(
        &app.delete(&format!("/api/v1/friends/{}", a.id), &b.token).await?,
        StatusCode::NOT_FOUND,
        "not_friends",
    );
    Ok(())
}

async fn categories(app: TestApp) -> TestResult {
    let (a, b) = (app.user("alice").await?, app.user("bob").await?);
    let (_, r) = app.get("/api/v1/friend/categories", &a.token).await?;
    let cats = items(&r)?;
    assert_eq!(cats.len(), 1);
    assert_eq!(
        (cats[0]["name"].as_str(), cats[0]["is_default"].as_bool(), cats[0]["count"].as_i64()),
        (Some("Friends"), Some(true), Some(0))
    );
    let default_id = cats[0]["id"].as_i64().ok_or("id")?;

    let (s, fam) = app.post("/api/v1/friend/categories", Some(&a.token), json!({"name": "Family"})).await?;
    assert_eq!(s, StatusCode::CREATED, "{fam}");
    let fam_id = fam["id"].as_i64().ok_or("id")?;
    assert_error(
        &app.post("/api/v1/friend/categories", Some(&a.token), json!({"name": "family"})).await?,
        StatusCode::CONFLICT,
        "category_exists",
    );
    assert_error(
        &app.post("/api/v1/friend/categories", Some(&a.token), json!({"name": ""})).await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_name",
    );
    assert_error(
        &app.post("/api/v1/friend/categories", Some(&a.token), json!({"name": "n".repeat(33)})).await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_name",
    );
    let (s, _) = app.post("/api/v1/friend/categories", Some(&a.token), json!({"name": "n".repeat(32)})).await?;
    assert_eq!(s, StatusCode::CREATED);
    // Names are per user.
    let (s, _) = app.post("/api/v1/friend/categories", Some(&b.token), json!({"name": "Family"})).await?;
    assert_eq!(s, StatusCode::CREATED);

    // Rename; renaming onto another name of mine is refused; renaming to itself is fine.
    let (s, r) = app.patch(&format!("/api/v1/friend/categories/{fam_id}"), &a.token, json!({"name": "Kin"})).await?;
    assert_eq!((s, r["name"].as_str()), (StatusCode::OK, Some("Kin")));
    assert_error(
        &app.patch(&format!("/api/v1/friend/categories/{fam_id}"), &a.token, json!({"name": "FRIENDS"})).await?,
        StatusCode::CONFLICT,
        "category_exists",
    );
    let (s, _) = app.patch(&format!("/api/v1/friend/categories/{fam_id}"), &a.token, json!({"name": "KIN"})).await?;
    assert_eq!(s, StatusCode::OK);

    // Counts, then delete moves friends to the default category.
    app.befriend(&a, &b).await?;
    let (s, _) = app.patch(&format!("/api/v1/friends/{}", b.id), &a.token, json!({"category_id": fam_id})).await?;
    assert_eq!(s, StatusCode::OK);
    let (_, r) = app.get("/api/v1/friend/categories", &a.token).await?;
    let count_of =
        |id: i64| items(&r).ok().and_then(|v| v.iter().find(|c| c["id"] == id).and_then(|c| c["count"].as_i64()));
    assert_eq!((count_of(default_id), count_of(fam_id)), (Some(0), Some(1)));
    let (s, d) = app.delete(&format!("/api/v1/friend/categories/{fam_id}"), &a.token).await?;
    assert_eq!((s, d["moved_to_default"].as_i64()), (StatusCode::OK, Some(1)));
    let (_, f) = app.get(&format!("/api/v1/friends/{}", b.id), &a.token).await?;
    assert_eq!(f["category"]["id"], default_id);

    assert_error(
        &app.delete(&format!("/api/v1/friend/categories/{default_id}"), &a.token).await?,
        StatusCode::BAD_REQUEST,
        "cannot_delete_default",
    );
    // Another user's category: 404 for every verb, not 403.
    let (_, r) = app.get("/api/v1/friend/categories", &b.token).await?;
    let bobs = items(&r)?[1]["id"].as_i64().ok_or("id")?;
    assert_error(
        &app.patch(&format!("/api/v1/friend/categories/{bobs}"), &a.token, json!({"name": "mine now"})).await?,
        StatusCode::NOT_FOUND,
        "category_not_found",
    );
    assert_error(
        &app.delete(&format!("/api/v1/friend/categories/{bobs}"), &a.token).await?,
        StatusCode::NOT_FOUND,
        "category_not_found",
    );
    assert_error(
        &app.delete(&format!("/api/v1/friend/categories/{fam_id}"), &a.token).await?,
        StatusCode::NOT_FOUND,
        "category_not_found",
    );
    Ok(())
}

async fn concurrent_accepts_leave_one_friendship(app: TestApp) -> TestResult {
    for round in 0..5 {
        let a = app.user(&format!("alice{round}")).await?;
        let b = app.user(&format!("bob{round}")).await?;
        let b2 = app.login(&b.username).await?;
        let (_, r) = send(&app, &a, &b, "hi").await?;
        let id = r["id"].as_i64().ok_or("id")?;
        // Two devices of the recipient accept at the same moment.
        let (r1, r2) = futures_util::future::join(
            answer(&app, &b, id, json!({"action": "accept"})),
            answer(&app, &b2, id, json!({"action": "accept"})),
        )
        .await;
        let mut statuses = [r1?.0, r2?.0];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "round {round}");
        assert_eq!(friend_ids(&app, &a).await?, [b.id]);
        assert_eq!(friend_ids(&app, &b).await?, [a.id]);
    }
    Ok(())
}

async fn requests_racing_deletes_stay_consistent(app: TestApp) -> TestResult {
    for round in 0..6 {
        let a = app.user(&format!("ann{round}")).await?;
        let b = app.user(&format!("ben{round}")).await?;
        // Mutual requests at the same moment, then a delete racing an accept of a new request.
        let (r1, r2) = futures_util::future::join(send(&app, &a, &b, "x"), send(&app, &b, &a, "y")).await;
        let (r1, r2) = (r1?, r2?);
        assert!(r1.0.is_success() && r2.0.is_success(), "{r1:?} {r2:?}");
        let pending: Vec<&Value> = [&r1.1, &r2.1].into_iter().filter(|r| r["status"] == "pending").collect();
        // Either one request found the other (friends at once) or both are pending.
        for p in &pending {
            let to = if p["to_user_id"] == a.id { &a } else { &b };
            let (s, _) = answer(&app, to, p["id"].as_i64().ok_or("id")?, json!({"action": "accept"})).await?;
            assert!(s == StatusCode::OK || s == StatusCode::CONFLICT, "{s}");
        }
        assert_eq!(friend_ids(&app, &a).await?, [b.id], "round {round}");
        assert_eq!(friend_ids(&app, &b).await?, [a.id], "round {round}");

        // Delete racing a request the other way: both sides agree afterwards.
        app.clock.advance(DAY + 1);
        let (d, s) = futures_util::future::join(
            app.delete(&format!("/api/v1/friends/{}", b.id), &a.token),
            send(&app, &b, &a, "again"),
        )
        .await;
        let (d, s) = (d?, s?);
        assert_eq!(d.0, StatusCode::NO_CONTENT);
        assert!(s.0 == StatusCode::CREATED || s.1["error"] == "already_friends", "{s:?}");
        let (fa, fb) = (friend_ids(&app, &a).await?, friend_ids(&app, &b).await?);
        assert!(fa.is_empty() && fb.is_empty(), "round {round}: {fa:?} {fb:?}");
    }
    Ok(())
}
