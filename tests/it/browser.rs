//! The dashboard in a real browser: Debian's `chromium`, headless, driven through WebDriver
//! (`chromium-driver`, started by the test on a free port), against a real hookd and a real
//! receiver. Each test saves a screenshot of every page it visits under
//! `target/ui-screenshots/`. Without the packages the tests say so and return, except under
//! `CI=true`, where they fail (`.ci/run` installs them).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::support::{Receiver, Server, Tenant, wait_listening, wait_until};

/// A headless Chromium session through its own chromedriver, both stopped on drop.
struct Browser {
    client: Option<Client>,
    driver: Child,
}

impl Browser {
    async fn start() -> Option<Self> {
        let installed = |p: &str| std::path::Path::new(p).exists();
        if !installed("/usr/bin/chromedriver") || !installed("/usr/bin/chromium") {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "chromium and chromium-driver are not installed (Debian's packages); .ci/run installs them"
            );
            eprintln!("skipped: chromium and chromium-driver are not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut browser = Self {
            client: None,
            driver,
        };
        let url = format!("http://127.0.0.1:{port}");
        wait_listening("chromedriver", port).await;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"],
            }),
        );
        // WebDriver on 127.0.0.1 is plain HTTP: no TLS stack needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a browser session");
        browser.client = Some(client);
        Some(browser)
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("session")
    }

    async fn goto(&self, url: &str) {
        self.client().goto(url).await.expect("goto");
    }

    /// Waits until an element matching `css` exists and its text contains `text` (any of
    /// them, when several match).
    async fn wait_text(&self, css: &str, text: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            for found in self
                .client()
                .find_all(Locator::Css(css))
                .await
                .unwrap_or_default()
            {
                if found.text().await.is_ok_and(|t| t.contains(text)) {
                    return;
                }
            }
            if tokio::time::Instant::now() > deadline {
                let page = self.client().source().await.unwrap_or_default();
                panic!("no {css} with {text:?} after 20 s; the page:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the element matching `css`, finding it again if the page re-rendered under it.
    async fn click(&self, css: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let clicked = match self.client().find(Locator::Css(css)).await {
                Ok(element) => element.click().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match clicked {
                Ok(()) => return,
                Err(e) if tokio::time::Instant::now() > deadline => panic!("{css}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// The element matching `css`, which must be on the page.
    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        self.client()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    /// Picks `value` in the `<select>` matching `css`.
    async fn select(&self, css: &str, value: &str) {
        self.element(css)
            .await
            .select_by_value(value)
            .await
            .expect("select");
    }

    async fn exists(&self, css: &str) -> bool {
        !self
            .client()
            .find_all(Locator::Css(css))
            .await
            .expect("find")
            .is_empty()
    }

    async fn sign_in(&self, base: &str, key: &str) {
        self.goto(&format!("{base}/ui/")).await;
        self.wait_text("h1", "Sign in").await;
        self.client()
            .find(Locator::Css("#token"))
            .await
            .expect("token field")
            .send_keys(key)
            .await
            .expect("type");
        self.click("#signin").await;
    }

    /// Saves what the browser shows as `target/ui-screenshots/<name>.png`.
    async fn screenshot(&self, name: &str) {
        let png = self.client().screenshot().await.expect("screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("save screenshot");
    }

    async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The trace the failed delivery's event is published in.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A tenant with an endpoint whose receiver fails the first request and accepts the rest,
/// and one published event whose delivery failed for good (no retries).
async fn failed_delivery(server: &Server) -> (Tenant, Receiver, String) {
    let t = server.tenant("acme").await;
    let receiver = Receiver::with(|n, _| {
        if n == 0 {
            (500, vec![], "database is down".into())
        } else {
            (200, vec![], "ok".into())
        }
    })
    .await;
    let ep = t
        .endpoint(json!({"name": "orders", "url": receiver.url, "events": ["*"], "retrySchedule": [], "disableAfter": 0,
            "auth": {"type": "basic", "username": "shop", "password": "pw-never-shown"}}))
        .await;
    // Published in a trace: the delivery panel shows each attempt's trace id.
    let (status, body) = t
        .admin
        .post_with_headers(
            "/v1/events",
            json!({"type": "order.paid", "data": {"orderId": 42}}),
            &[("traceparent", &format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))],
        )
        .await;
    assert_eq!(status, http::StatusCode::ACCEPTED, "{body}");
    receiver.wait_for(1).await;
    let id = ep["id"].as_str().expect("id").to_owned();
    let admin = t.admin.clone();
    let path = format!("/v1/endpoints/{id}/deliveries?status=failed");
    wait_until("the delivery failed", Duration::from_secs(10), || {
        let (admin, path) = (admin.clone(), path.clone());
        async move { admin.get(&path).await.1["totalElements"] == 1 }
    })
    .await;
    (t, receiver, id)
}

#[tokio::test]
async fn an_admin_sees_a_failed_delivery_retries_it_and_watches_it_succeed() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = Server::start().await;
    let (t, receiver, endpoint) = failed_delivery(&server).await;
    let (status, _) = server
        .operator()
        .patch(
            &format!("/v1/tenants/{}", t.id),
            json!({"limits": {"eventsPerDay": 100}}),
        )
        .await;
    assert_eq!(status, http::StatusCode::OK);
    let key = server.key(&t.id, "admin").await;
    browser.sign_in(&server.base, &key).await;
    browser.wait_text("main table", "orders").await;
    browser.wait_text("#who", "admin").await;
    browser.wait_text("#who", "events today 1 of 100").await;
    browser.wait_text("main h2", "Add an endpoint").await;
    let text = browser.element("main").await.text().await.expect("text");
    assert!(
        !text.contains("[object"),
        "every part of the page is rendered: {text}"
    );
    browser.screenshot("endpoints").await;
    browser.click(&format!("tr[data-id='{endpoint}']")).await;
    browser.wait_text("main h2", "Deliveries").await;
    browser.wait_text("main table", "failed").await;
    browser.wait_text("#guards", "auth configured").await;
    browser.screenshot("endpoint").await;
    browser.click("main table tbody tr").await;
    browser.wait_text("#delivery", "database is down").await;
    browser.wait_text("#delivery", "500").await;
    // The error in words, its class code kept for a hover.
    browser
        .wait_text("#delivery", "the endpoint answered 500")
        .await;
    browser.wait_text("#delivery", TRACE_ID).await;
    let panel = browser
        .element("#delivery")
        .await
        .text()
        .await
        .expect("text");
    assert!(!panel.contains("http_status"), "{panel}");
    // The request it sent: headers (the password never), the body indented.
    browser.click("#request summary").await;
    browser.wait_text("#request", "webhook-signature").await;
    browser
        .wait_text("#request", "(from the endpoint's auth)")
        .await;
    browser.wait_text("#request-body", "\"orderId\": 42").await;
    let request = browser
        .element("#request")
        .await
        .text()
        .await
        .expect("text");
    assert!(!request.contains("pw-never-shown"), "{request}");
    browser.screenshot("delivery-failed").await;
    browser.click("#retry").await;
    receiver.wait_for(2).await;
    // The page re-reads the delivery: wait for the retried attempt to be recorded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        browser.client().refresh().await.expect("refresh");
        browser.wait_text("#delivery h2", "Delivery").await;
        if let Ok(panel) = browser.client().find(Locator::Css("#delivery h2")).await
            && panel.text().await.is_ok_and(|t| t.contains("succeeded"))
        {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let page = browser.client().source().await.unwrap_or_default();
            panic!("the retried delivery never showed as succeeded; the page:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser.screenshot("delivery-retried").await;
    // A broker endpoint's page says where its messages go.
    let stream = t
        .endpoint(json!({
            "url": "redis://127.0.0.1:9",
            "destination": {"type": "redis", "stream": "orders-stream"},
            "events": ["order.*"],
        }))
        .await;
    let path = format!("#/endpoints/{}", stream["id"].as_str().expect("id"));
    browser.goto(&format!("{}/ui/{path}", server.base)).await;
    browser
        .wait_text("main", "redis://127.0.0.1:9 → Redis stream orders-stream")
        .await;
    // Deep links and the other pages.
    for (path, name, text) in [
        ("#/events", "events", "order.paid"),
        ("#/incoming", "incoming", "Incoming webhooks"),
        ("#/schedules", "schedules", "Schedules"),
        ("#/integrations", "integrations", "slack"),
    ] {
        browser.goto(&format!("{}/ui/{path}", server.base)).await;
        browser.wait_text("main", text).await;
        browser.screenshot(name).await;
    }
    // An incoming webhook made from the page: its URL, shown once, takes a call.
    browser
        .goto(&format!("{}/ui/#/incoming", server.base))
        .await;
    browser
        .wait_text("main h2", "Add an incoming webhook")
        .await;
    let form = browser.element("main form").await;
    form.find(Locator::Css("input"))
        .await
        .expect("name")
        .send_keys("stripe")
        .await
        .expect("type");
    form.find(Locator::Css("button"))
        .await
        .expect("add")
        .click()
        .await
        .expect("click");
    browser.wait_text("#incoming-url", "/hooks/in/").await;
    let hook_url = browser
        .element("#incoming-url")
        .await
        .text()
        .await
        .expect("text");
    let (status, _, _) = t
        .admin
        .with_base("")
        .raw("POST", &hook_url, Some("application/json"), b"{}".to_vec())
        .await;
    assert_eq!(status, http::StatusCode::ACCEPTED, "{hook_url}");
    browser.screenshot("incoming-created").await;
    browser
        .goto(&format!("{}/ui/#/schedules", server.base))
        .await;
    browser.wait_text("main h1", "Schedules").await;
    browser
        .goto(&format!("{}/ui/#/integrations", server.base))
        .await;
    browser.wait_text("main h1", "Integrations").await;
    browser.client().back().await.expect("back");
    browser.wait_text("main h1", "Schedules").await;
    browser.close().await;
    server.stop().await;
}

#[tokio::test]
async fn a_viewer_finds_no_write_buttons_and_the_api_refuses_its_writes() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = Server::start().await;
    let (t, _receiver, endpoint) = failed_delivery(&server).await;
    let key = server.key(&t.id, "viewer").await;
    browser.sign_in(&server.base, &key).await;
    browser.wait_text("#who", "viewer").await;
    browser
        .goto(&format!("{}/ui/#/endpoints/{endpoint}", server.base))
        .await;
    browser.wait_text("main h2", "Deliveries").await;
    browser.wait_text("main table", "failed").await;
    browser.click("main table tbody tr").await;
    browser.wait_text("#delivery", "database is down").await;
    browser.screenshot("viewer-endpoint").await;
    for button in ["#test-send", "#rotate", "#enable", "#retry"] {
        assert!(!browser.exists(button).await, "a viewer sees {button}");
    }
    // The API refuses what the page does not offer.
    let status = browser
        .client()
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/v1/endpoints/' + arguments[0] + '/test', {method: 'POST',
                   headers: {authorization: 'Bearer ' + sessionStorage.getItem('hookd.token')}})
               .then(r => done(r.status));",
            vec![json!(endpoint)],
        )
        .await
        .expect("fetch");
    assert_eq!(status, json!(403));
    browser.close().await;
    server.stop().await;
}

#[tokio::test]
async fn a_portal_link_opens_the_dashboard_signed_in_until_it_is_revoked() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = Server::start().await;
    let (t, _receiver, _endpoint) = failed_delivery(&server).await;
    let (_, link) = t
        .admin
        .post(
            "/v1/portal-links",
            json!({"role": "viewer", "expiresIn": "1h"}),
        )
        .await;
    let url = link["url"].as_str().expect("url");
    browser.goto(&format!("{}{url}", server.base)).await;
    browser.wait_text("#who", "portal link").await;
    browser.wait_text("main table", "orders").await;
    let address = browser.client().current_url().await.expect("url");
    assert!(
        !address.as_str().contains("token="),
        "the token leaves the address bar: {address}"
    );
    browser.screenshot("portal").await;
    let id = link["id"].as_str().expect("id");
    let (status, _) = t.admin.delete(&format!("/v1/portal-links/{id}")).await;
    assert_eq!(status, http::StatusCode::NO_CONTENT);
    browser.client().refresh().await.expect("refresh");
    browser.wait_text("#error", "").await;
    browser.wait_text("main h1", "Sign in").await;
    browser.screenshot("portal-revoked").await;
    browser.close().await;
    server.stop().await;
}

#[tokio::test]
async fn an_admin_runs_a_schedule_and_connects_tests_and_disconnects_an_integration() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let ep = t
        .endpoint(json!({"name": "digests", "url": receiver.url, "events": ["order.*"]}))
        .await;
    let (status, schedule) = t
        .admin
        .post(
            "/v1/schedules",
            json!({"scheduleType": "custom_cron", "cronExpression": "0 9 * * 1",
                   "timezone": "Europe/Paris", "format": "json", "deliveryMethod": "webhook",
                   "endpointId": ep["id"]}),
        )
        .await;
    assert_eq!(status, http::StatusCode::CREATED, "{schedule}");
    let key = server.key(&t.id, "admin").await;
    browser.sign_in(&server.base, &key).await;
    browser.wait_text("#who", "admin").await;
    browser
        .goto(&format!("{}/ui/#/schedules", server.base))
        .await;
    browser.wait_text("main table", "Europe/Paris").await;
    browser.screenshot("schedules-list").await;
    let id = schedule["id"].as_str().expect("id");
    browser.click(&format!("tr[data-id='{id}']")).await;
    browser.wait_text("main h1", "Custom (cron)").await;
    browser.click("#trigger").await;
    let digest = receiver.wait_for(1).await;
    assert_eq!(digest[0].json()["event"], "schedule.digest");
    browser.wait_text("main table", "run_").await;
    browser.screenshot("schedule").await;

    browser
        .goto(&format!("{}/ui/#/integrations", server.base))
        .await;
    browser.wait_text("main table", "webhook").await;
    browser
        .element("#url-webhook")
        .await
        .send_keys(&receiver.url)
        .await
        .expect("type");
    browser.click("#connect-webhook").await;
    browser.wait_text("tr[data-id='webhook']", "active").await;
    browser.click("#test-webhook").await;
    browser.wait_text(".notice", "200").await;
    receiver.wait_for(2).await;
    browser.screenshot("integrations-connected").await;
    browser.click("#disconnect-webhook").await;
    browser
        .wait_text("tr[data-id='webhook']", "not connected")
        .await;
    browser.close().await;
    server.stop().await;
}

/// Typing into a form field found by `css`.
async fn type_into(browser: &Browser, css: &str, text: &str) {
    browser
        .element(css)
        .await
        .send_keys(text)
        .await
        .expect("type");
}

#[tokio::test]
async fn the_dashboard_speaks_to_a_person_and_shows_what_was_just_made() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;

    // The operator token is not a tenant's: the page says what it is and where keys come from.
    browser.sign_in(&server.base, crate::support::ADMIN).await;
    browser
        .wait_text("main h1", "This is the operator token")
        .await;
    let who = browser.element("#who").await;
    assert_eq!(who.text().await.expect("text"), "operator");
    assert!(
        !browser
            .client()
            .source()
            .await
            .expect("page")
            .contains("undefined")
    );
    browser.screenshot("operator-token").await;
    // A wrong key: a sentence for a person, not the API's header instructions.
    browser.click("main button").await;
    browser.sign_in(&server.base, "hk_999_wrong").await;
    browser
        .wait_text("#error", "come from whoever runs your hookd")
        .await;
    let page = browser.client().source().await.expect("page");
    assert!(!page.contains("Authorization: Bearer"), "{page}");

    // A new endpoint shows in the list at once, the form is empty again, the secret above.
    let key = server.key(&t.id, "admin").await;
    browser.sign_in(&server.base, &key).await;
    browser.wait_text("main h1", "Endpoints").await;
    type_into(&browser, "form input[name='name']", "orders").await;
    type_into(&browser, "form input[name='url']", &receiver.url).await;
    browser.click("form button[type='submit']").await;
    browser
        .wait_text(".notice", "signing secret (shown once)")
        .await;
    browser.wait_text("main table", "orders").await;
    let name = browser.element("form input[name='name']").await;
    assert_eq!(
        name.prop("value").await.expect("value").as_deref(),
        Some("")
    );
    let (_, listed) = t.admin.get("/v1/endpoints").await;
    assert_eq!(listed["totalElements"], 1, "one click, one endpoint");
    browser.screenshot("endpoint-created").await;

    // Words, not codes; ids are links.
    let id = listed["content"][0]["id"].as_str().expect("id").to_owned();
    let (status, _) = t
        .admin
        .patch(&format!("/v1/endpoints/{id}"), json!({"isActive": false}))
        .await;
    assert_eq!(status, http::StatusCode::OK);
    browser
        .goto(&format!("{}/ui/#/endpoints/{id}", server.base))
        .await;
    browser.wait_text("main h1", "disabled by hand").await;
    let event = t.publish("order.paid", json!({"n": 1})).await;
    let event = event["id"].as_str().expect("event id").to_owned();
    browser.goto(&format!("{}/ui/#/events", server.base)).await;
    browser.click(&format!("a[href='#/events/{event}']")).await;
    browser.wait_text("main h1", "order.paid").await;
    browser
        .goto(&format!("{}/ui/#/integrations", server.base))
        .await;
    browser.wait_text("main table", "webhook").await;
    let placeholder = browser
        .element("#url-webhook")
        .await
        .attr("placeholder")
        .await
        .expect("placeholder");
    assert_eq!(placeholder.as_deref(), Some("Webhook URL"));

    // A page the plan leaves out says so, and shows nothing of the page before it.
    let (status, _) = server
        .operator()
        .patch(
            &format!("/v1/tenants/{}", t.id),
            json!({"features": {"incoming": false}}),
        )
        .await;
    assert_eq!(status, http::StatusCode::OK);
    browser
        .goto(&format!("{}/ui/#/endpoints", server.base))
        .await;
    browser.wait_text("main h1", "Endpoints").await;
    browser
        .goto(&format!("{}/ui/#/incoming", server.base))
        .await;
    browser.wait_text("main h1", "Not available").await;
    assert!(!browser.exists("main table").await, "no other page's body");
    browser.wait_text("#unavailable", "incoming").await;
    browser.screenshot("not-in-plan").await;
    browser.close().await;
    server.stop().await;
}

/// A server, a tenant with an endpoint "orders" (events `order.*`) to an accepting receiver,
/// and the browser signed in as its admin on the endpoint's page.
async fn on_an_endpoint_page(browser: &Browser) -> (Server, Tenant, Receiver, String) {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let ep = t
        .endpoint(json!({"name": "orders", "url": receiver.url, "events": ["order.*"]}))
        .await;
    let id = ep["id"].as_str().expect("id").to_owned();
    let key = server.key(&t.id, "admin").await;
    browser.sign_in(&server.base, &key).await;
    browser.wait_text("main table", "orders").await;
    browser
        .goto(&format!("{}/ui/#/endpoints/{id}", server.base))
        .await;
    browser.wait_text("main h1", "orders").await;
    (server, t, receiver, id)
}

#[tokio::test]
async fn an_admin_edits_pauses_resumes_and_deletes_an_endpoint_and_opens_an_event_by_id() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (server, t, _receiver, id) = on_an_endpoint_page(&browser).await;

    // Edit: the form holds the settings as they are; saved, the API answers the new ones.
    browser.click("#edit summary").await;
    let set = |css: &'static str, text: String| {
        let browser = &browser;
        async move {
            let field = browser.element(css).await;
            field.clear().await.expect("clear");
            field.send_keys(&text).await.expect("type");
        }
    };
    set("#edit-events", "order.*, invoice.paid".into()).await;
    set("#edit-retrySchedule", "10s, 1m".into()).await;
    set("#edit-rateLimit", "50".into()).await;
    browser.click("#save").await;
    browser.wait_text(".notice", "Saved").await;
    let path = format!("/v1/endpoints/{id}");
    let (_, now) = t.admin.get(&path).await;
    assert_eq!(now["events"], json!(["order.*", "invoice.paid"]));
    assert_eq!(now["retrySchedule"], json!(["10s", "1m"]));
    assert_eq!(now["rateLimit"], 50);
    browser.screenshot("endpoint-edited").await;

    // Pause and resume.
    browser.click("#pause").await;
    browser.wait_text("main h1", "disabled by hand").await;
    assert_eq!(t.admin.get(&path).await.1["isActive"], false);
    browser.click("#enable").await;
    browser.wait_text("main h1", "active").await;
    assert_eq!(t.admin.get(&path).await.1["isActive"], true);

    // An event found by its id.
    let event = t.publish("order.paid", json!({"orderId": 7})).await;
    let event = event["id"].as_str().expect("event id").to_owned();
    browser.goto(&format!("{}/ui/#/events", server.base)).await;
    browser.wait_text("main h1", "Events").await;
    browser.wait_text("main table", &event).await;
    type_into(&browser, "#event-id", &event).await;
    browser.click("#find-event").await;
    browser.wait_text("main pre", "\"orderId\": 7").await;

    // Delete asks first; confirmed, the endpoint is gone.
    browser
        .goto(&format!("{}/ui/#/endpoints/{id}", server.base))
        .await;
    browser.wait_text("main h1", "orders").await;
    browser.click("#delete").await;
    browser.client().accept_alert().await.expect("confirm");
    browser.wait_text(".notice", "Deleted orders").await;
    assert_eq!(t.admin.get(&path).await.0, http::StatusCode::NOT_FOUND);
    browser.close().await;
    server.stop().await;
}

#[tokio::test]
async fn an_admin_adds_a_signed_incoming_webhook_and_adds_and_deletes_a_schedule() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    t.endpoint(json!({"name": "digests", "url": receiver.url, "events": ["*"]}))
        .await;
    let key = server.key(&t.id, "admin").await;
    browser.sign_in(&server.base, &key).await;
    browser.wait_text("main table", "digests").await;

    // An incoming webhook that checks GitHub signatures.
    browser
        .goto(&format!("{}/ui/#/incoming", server.base))
        .await;
    browser
        .wait_text("main h2", "Add an incoming webhook")
        .await;
    type_into(&browser, "#incoming-name", "github").await;
    type_into(&browser, "#incoming-type", "repo.pushed").await;
    browser.select("#incoming-scheme", "github").await;
    type_into(&browser, "#incoming-secret", "a-github-webhook-secret").await;
    browser.click("#add-incoming").await;
    browser.wait_text("#incoming-url", "/hooks/in/").await;
    browser.wait_text("main table", "github").await;
    let (_, hooks) = t.admin.get("/v1/incoming").await;
    assert_eq!(hooks["content"][0]["verify"]["scheme"], "github", "{hooks}");
    browser.screenshot("incoming-created").await;

    // A custom cron schedule in the schedule's own zone, then deleted after a confirmation.
    browser
        .goto(&format!("{}/ui/#/schedules", server.base))
        .await;
    browser.wait_text("main h2", "Add a schedule").await;
    browser.select("#schedule-type", "custom_cron").await;
    type_into(&browser, "#schedule-cron", "0 9 * * 1").await;
    let zone = browser.element("#schedule-zone").await;
    zone.clear().await.expect("clear");
    zone.send_keys("Europe/Paris").await.expect("type");
    browser.click("#add-schedule").await;
    browser.wait_text(".notice", "(Europe/Paris)").await;
    browser.wait_text("main table", "Custom (cron)").await;
    let (_, schedules) = t.admin.get("/v1/schedules").await;
    assert_eq!(schedules["content"][0]["cronExpression"], "0 9 * * 1");
    let id = schedules["content"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    browser.screenshot("schedule-created").await;
    browser.click(&format!("tr[data-id='{id}']")).await;
    browser.click("#delete-schedule").await;
    browser.client().accept_alert().await.expect("confirm");
    browser.wait_text(".notice", "Deleted schedule").await;
    assert_eq!(t.admin.get("/v1/schedules").await.1["totalElements"], 0);
    browser.close().await;
    server.stop().await;
}

/// The value of `attr` on the element matching `css`, once it contains `text`.
async fn wait_attr(browser: &Browser, css: &str, attr: &str, text: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(found) = browser.client().find(Locator::Css(css)).await
            && found
                .attr(attr)
                .await
                .is_ok_and(|v| v.is_some_and(|v| v.contains(text)))
        {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let page = browser.client().source().await.unwrap_or_default();
            panic!("no {css} with {attr} containing {text:?} after 20 s; the page:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count(browser: &Browser, css: &str) -> usize {
    browser
        .client()
        .find_all(Locator::Css(css))
        .await
        .expect("find")
        .len()
}

#[tokio::test]
async fn an_operator_reads_the_last_day_in_charts_and_each_endpoint_in_a_sparkline() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    // Every fourth request fails: 6 of 8 attempts succeed.
    let receiver = Receiver::with(|n, _| {
        if n % 4 == 3 {
            (500, vec![], "busy".into())
        } else {
            (200, vec![], "ok".into())
        }
    })
    .await;
    let busy = t
        .endpoint(json!({"name": "orders", "url": receiver.url, "events": ["order.*"], "retrySchedule": [], "disableAfter": 0}))
        .await;
    let busy = busy["id"].as_str().expect("id").to_owned();
    let quiet = t
        .endpoint(json!({"name": "invoices", "url": receiver.url, "events": ["invoice.*"]}))
        .await;
    let quiet = quiet["id"].as_str().expect("id").to_owned();
    for n in 0..8 {
        t.publish("order.paid", json!({"n": n})).await;
    }
    let admin = t.admin.clone();
    let path = format!("/v1/endpoints/{busy}/stats");
    wait_until("8 attempts recorded", Duration::from_secs(20), || {
        let (admin, path) = (admin.clone(), path.clone());
        async move {
            let (_, s) = admin.get(&path).await;
            s["succeeded"] == 6 && s["failed"] == 2
        }
    })
    .await;

    // The list: a sparkline per endpoint from one request for all of them.
    let key = server.key(&t.id, "admin").await;
    browser.sign_in(&server.base, &key).await;
    browser.wait_text("main table", "orders").await;
    let row = |id: &str| format!("tr[data-id='{id}'] svg.sparkline");
    wait_attr(&browser, &row(&busy), "aria-label", "6 succeeded, 2 failed").await;
    wait_attr(
        &browser,
        &row(&quiet),
        "aria-label",
        "0 succeeded, 0 failed",
    )
    .await;
    assert_eq!(count(&browser, &format!("{} g.step", row(&busy))).await, 24);
    browser
        .wait_text(&format!("tr[data-id='{busy}']"), "75.0%")
        .await;
    let fetched = browser
        .client()
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name)",
            vec![],
        )
        .await
        .expect("resources");
    let fetched: Vec<String> = serde_json::from_value(fetched).expect("names");
    let per_endpoint = fetched.iter().filter(|u| u.contains("/stats")).count();
    assert_eq!(
        per_endpoint, 1,
        "one stats request for the list: {fetched:?}"
    );
    assert!(
        fetched
            .iter()
            .any(|u| u.ends_with("/v1/stats/series?window=24h")),
        "{fetched:?}"
    );
    browser.screenshot("endpoints-sparklines").await;

    // An endpoint's page: attempts, success rate and latency per hour over the last 24 hours.
    browser
        .click(&format!("a[href='#/endpoints/{busy}']"))
        .await;
    wait_attr(
        &browser,
        "svg.chart.deliveries",
        "aria-label",
        "6 succeeded, 2 failed",
    )
    .await;
    assert_eq!(count(&browser, "svg.chart.deliveries g.step").await, 24);
    // Both failures fall in one hour, or two when the test spans the hour.
    let red = count(&browser, "svg.chart.deliveries rect.bad").await;
    assert!((1..=2).contains(&red), "{red} red bars");
    wait_attr(&browser, "svg.chart.rate", "aria-label", "75.0%").await;
    assert!(browser.exists("svg.chart.latency path.line.p99").await);
    assert!(browser.exists("svg.chart.latency circle.dot.p50").await);
    browser.screenshot("endpoint-charts").await;

    // The week, per six hours; the choice stays in the page's address.
    browser.click("#window-7d").await;
    wait_attr(
        &browser,
        "svg.chart.deliveries",
        "aria-label",
        "over the last 7 days",
    )
    .await;
    assert_eq!(count(&browser, "svg.chart.deliveries g.step").await, 28);
    let url = browser.client().current_url().await.expect("url");
    assert!(url.as_str().ends_with("window=7d"), "{url}");

    // The log narrowed by event type, then by a window of time given in the address.
    type_into(&browser, "#log-type", "order.refunded").await;
    browser.click("#apply-filters").await;
    browser
        .wait_text("main .empty", "No deliveries match these filters")
        .await;
    let field = browser.element("#log-type").await;
    field.clear().await.expect("clear");
    field.send_keys("order.paid").await.expect("type");
    browser.click("#apply-filters").await;
    browser.wait_text("main table", "order.paid").await;
    assert_eq!(count(&browser, "main table tbody tr").await, 8);
    let url = browser.client().current_url().await.expect("url");
    assert!(url.as_str().contains("eventType=order.paid"), "{url}");
    assert!(
        url.as_str().contains("window=7d"),
        "the chart's window is kept: {url}"
    );
    browser.screenshot("deliveries-filtered").await;
    browser.click("#clear-filters").await;
    browser
        .goto(&format!(
            "{}/ui/#/endpoints/{busy}?since=2999-01-01T00:00:00.000Z",
            server.base
        ))
        .await;
    browser
        .wait_text("main .empty", "No deliveries match these filters")
        .await;
    let since = browser.element("#log-since").await;
    let shown = since
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default();
    assert!(
        shown.starts_with("2999-01-0") || shown.starts_with("2998-12-31"),
        "{shown}"
    );
    browser.close().await;
    server.stop().await;
}

#[tokio::test]
async fn an_admin_sets_headers_and_auth_and_edits_a_schedule_seeing_its_next_runs() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (server, t, receiver, id) = on_an_endpoint_page(&browser).await;

    // Headers and HTTP Basic from the edit form; the receiver gets both.
    browser.click("#edit summary").await;
    type_into(&browser, "#edit-headers", "X-Source: dashboard").await;
    browser.select("#edit-auth", "basic").await;
    type_into(&browser, "#edit-auth-username", "shop").await;
    type_into(&browser, "#edit-auth-password", "s3cret").await;
    browser.screenshot("endpoint-auth").await;
    browser.click("#save").await;
    browser.wait_text(".notice", "Saved").await;
    let path = format!("/v1/endpoints/{id}");
    let (_, now) = t.admin.get(&path).await;
    assert_eq!(now["headers"], json!({"x-source": "dashboard"}), "{now}");
    assert_eq!(now["authConfigured"], true, "{now}");
    t.publish("order.paid", json!({"n": 1})).await;
    receiver.wait_for(1).await;
    let got = &receiver.received()[0];
    assert_eq!(got.header("x-source"), "dashboard");
    assert_eq!(got.header("authorization"), "Basic c2hvcDpzM2NyZXQ=");
    // Set credentials are kept unless another choice is made; "none" removes them.
    browser.click("#edit summary").await;
    let auth = browser.element("#edit-auth").await;
    assert_eq!(
        auth.prop("value").await.expect("value").as_deref(),
        Some("keep")
    );
    auth.select_by_value("none").await.expect("select");
    browser.click("#save").await;
    // The first save's "Saved." stays on the page until the second one re-renders it, so the
    // wait is on the endpoint itself.
    wait_until(
        "the second save removes the credentials",
        Duration::from_secs(10),
        || async { t.admin.get(&path).await.1["authConfigured"] == false },
    )
    .await;
    browser.wait_text(".notice", "Saved").await;
    let (_, now) = t.admin.get(&path).await;
    assert_eq!(
        now["headers"],
        json!({"x-source": "dashboard"}),
        "kept: {now}"
    );

    // A schedule's page lists the runs after the next; its edit form previews new ones.
    let (status, s) = t
        .admin
        .post(
            "/v1/schedules",
            json!({"scheduleType": "custom_cron", "cronExpression": "30 6 * * *", "timezone": "Asia/Tokyo",
                   "format": "json", "deliveryMethod": "webhook", "endpointId": id}),
        )
        .await;
    assert_eq!(status, http::StatusCode::CREATED, "{s}");
    let sid = s["id"].as_str().expect("id").to_owned();
    browser
        .goto(&format!("{}/ui/#/schedules/{sid}", server.base))
        .await;
    browser.wait_text("#next-runs", "Then").await;
    browser.wait_text("#next-runs", "6:30").await;
    browser.click("#edit-schedule summary").await;
    browser.wait_text("#schedule-preview", "Next runs").await;
    let cron = browser.element("#edit-cron").await;
    cron.clear().await.expect("clear");
    cron.send_keys("61 * * * *").await.expect("type");
    browser
        .wait_text("#schedule-preview", "cronExpression")
        .await;
    cron.clear().await.expect("clear");
    cron.send_keys("0 7 * * *").await.expect("type");
    browser.wait_text("#schedule-preview", "7:00").await;
    browser.screenshot("schedule-edit-preview").await;
    browser.click("#save-schedule").await;
    browser.wait_text(".notice", "Saved").await;
    let (_, saved) = t.admin.get(&format!("/v1/schedules/{sid}")).await;
    assert_eq!(saved["cronExpression"], "0 7 * * *", "{saved}");

    // The add form previews too, before anything is saved.
    browser
        .goto(&format!("{}/ui/#/schedules", server.base))
        .await;
    browser.wait_text("main h2", "Add a schedule").await;
    browser.select("#schedule-type", "weekly_digest").await;
    browser.wait_text("#schedule-preview", "Next runs").await;
    browser.wait_text("#schedule-preview", "9:00").await;
    browser.close().await;
    server.stop().await;
}
