//! The pages in real headless Chromium: a nurse calls from the console, the patient's phone and
//! the door display show it; the kiosk finds the pharmacy and draws the route; bad links and
//! lost connections say so. Screenshots of every page go to `target/test-artifacts/screenshots/`.

use crate::browser::{eval, screenshot, until, viewport, Driver, Screen};
use crate::helpers::{spawn_app, start, start_at, TOKEN};
use fantoccini::Locator;

const DESKTOP: Screen = Screen::Desktop { width: 1280, height: 860 };
/// Everything on the wall screen is inside the screen and above the recent-calls line: nothing
/// scrolls, nothing is cut off or hidden.
const FITS: &str = "[...document.querySelectorAll('#screen *')].every(e => { const r = e.getBoundingClientRect(); \
    return r.bottom <= document.querySelector('#calls').getBoundingClientRect().top + 1 && r.right <= window.innerWidth + 1; })";
const PHONE: Screen = Screen::Phone { width: 390, height: 844 };

#[tokio::test]
async fn a_call_from_the_console_reaches_the_patient_phone_and_the_door_display() {
    let app = spawn_app().await;
    // Someone already waiting, so the call goes to our patient second and the list shows both.
    let first = app.issue("internal-medicine", "p-first").await;
    let ticket = app.post("/api/v1/queues/internal-medicine/tickets", serde_json::json!({"patient_id": "p-page", "name": "李小梅"})).await;
    let ticket: serde_json::Value = ticket.json().await.unwrap();
    let number = ticket["number"].as_str().unwrap().to_owned();
    let driver = Driver::start().await;

    let phone = driver.page(PHONE).await;
    phone.goto(&app.url(ticket["patient_url"].as_str().unwrap())).await.unwrap();
    until(&phone, &format!("document.querySelector('#number').textContent === '{number}'"), "the patient page shows the number").await;
    until(&phone, "document.querySelector('#position').textContent === '1'", "one patient ahead").await;
    until(&phone, "document.querySelector('#position-note').textContent === '前面还有 1 位'", "the place in line explained").await;
    until(&phone, "document.querySelectorAll('#maps img').length > 0 && [...document.querySelectorAll('#maps img')].every(i => i.complete && i.naturalWidth > 0)", "the route to the department drawn on the map").await;
    until(&phone, "document.querySelectorAll('#steps li').length > 0", "turn-by-turn steps").await;

    let display = driver.page(Screen::Desktop { width: 1920, height: 1080 }).await;
    display.goto(&app.url("/display/door-c-101")).await.unwrap();
    until(&display, "document.querySelector('.door .room') !== null", "the door display shows its room").await;
    until(&display, &format!("document.querySelector('.nexts').textContent.includes('{}')", first["number"].as_str().unwrap()), "the next numbers").await;

    let console = driver.page(DESKTOP).await;
    console.goto(&app.url("/console")).await.unwrap();
    console.find(Locator::Css("#token")).await.unwrap().send_keys(TOKEN).await.unwrap();
    console.find(Locator::Css("#signin-btn")).await.unwrap().click().await.unwrap();
    until(&console, "!document.querySelector('#desk').classList.contains('hidden')", "signed in").await;
    console.find(Locator::Css("#room")).await.unwrap().select_by_value("c-101").await.unwrap();
    until(&console, &format!("document.querySelector('#waiting tr[data-number=\"{number}\"]') !== null"), "the live queue lists the patient").await;

    // First call: the other patient. Keyboard shortcut C completes them, then a click calls ours.
    console.find(Locator::Css("#call-next")).await.unwrap().click().await.unwrap();
    until(&console, &format!("document.querySelector('#current').textContent === '{}'", first["number"].as_str().unwrap()), "the first patient called").await;
    until(&phone, "document.querySelector('#position').textContent === '0'", "the phone's position moves up").await;
    until(&phone, "document.querySelector('#position-note').textContent === '下一位就是您'", "the pushed explanation follows").await;
    screenshot(&console, "console").await;
    console.find(Locator::Css("body")).await.unwrap().send_keys("c").await.unwrap();
    until(&console, "document.querySelector('#current').textContent === '—'", "completed with the C key").await;
    console.find(Locator::Css("#call-next")).await.unwrap().click().await.unwrap();

    until(&phone, "!document.querySelector('#called').classList.contains('hidden')", "the phone shows 'called'").await;
    let called = eval(&phone, "document.querySelector('#called-text').textContent").await;
    assert!(called.as_str().unwrap().contains("101"), "the phone names the room: {called}");
    until(&phone, "document.querySelector('#route-title').textContent.includes('101')", "the route now leads to the room").await;
    until(&display, &format!("document.querySelector('#current-number').textContent === '{number}'"), "the door display shows the number").await;
    let name = eval(&display, "document.querySelector('.door .name').textContent").await;
    assert_eq!(name, "李*梅", "public screens mask the name");
    until(&display, &format!("window.cfDisplay.spoken.some(s => s.text.includes('{number}'))"), "the call is spoken").await;

    screenshot(&phone, "patient-called").await;
    screenshot(&display, "display-door-1920x1080").await;
    until(&display, FITS, "fits 1920x1080").await;
    viewport(&display, 1366, 768).await;
    until(&display, FITS, "fits 1366x768").await;
    screenshot(&display, "display-door-1366x768").await;
    for c in [phone, display, console] {
        c.close().await.unwrap();
    }
}

#[tokio::test]
async fn the_corridor_display_speaks_two_calls_in_order_and_fits_the_screen() {
    let app = spawn_app().await;
    for i in 0..4 {
        app.issue("internal-medicine", &format!("p-corr-{i}")).await;
    }
    let driver = Driver::start().await;
    let display = driver.page(Screen::Desktop { width: 1366, height: 768 }).await;
    display.goto(&app.url("/display/corridor-1f")).await.unwrap();
    until(&display, "document.querySelectorAll('table.rooms tbody tr').length === 7", "seven rooms on the corridor screen").await;
    // Two calls 100 ms apart.
    let a = app.call_next("internal-medicine", "c-101").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let b = app.call_next("internal-medicine", "c-102").await.unwrap();
    let (a, b) = (a["number"].as_str().unwrap().to_owned(), b["number"].as_str().unwrap().to_owned());
    until(&display, &format!("document.querySelector('tr[data-room=\"c-102\"] td.number').textContent === '{b}'"), "both calls shown").await;
    until(&display, "window.cfDisplay.spoken.length >= 4", "both calls spoken in Chinese and English").await;
    let spoken = eval(&display, "window.cfDisplay.spoken.map(s => s.text)").await;
    let spoken: Vec<&str> = spoken.as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let pos = |n: &str| spoken.iter().position(|s| s.contains(n)).unwrap_or_else(|| panic!("{n} spoken: {spoken:?}"));
    assert!(pos(&a) < pos(&b), "spoken in call order: {spoken:?}");
    assert_eq!(spoken.iter().filter(|s| s.contains(&a)).count(), 2, "the first call spoken whole (zh + en), not cut: {spoken:?}");
    // The display told the server: both shown, both spoken, no alarm.
    let corridor = |v: serde_json::Value| v["displays"].as_array().unwrap().iter().find(|d| d["id"] == "corridor-1f").unwrap().clone();
    let app_ref = &app;
    let d = crate::helpers::poll(std::time::Duration::from_secs(15), move || async move { Some(corridor(app_ref.get_json("/api/v1/displays").await)).filter(|d| d["delivery"]["spoken"] == 2) })
        .await
        .unwrap_or_else(|| panic!("the display did not acknowledge both calls as spoken within 15 s"));
    assert_eq!(d["delivery"]["shown"], 2);
    assert_eq!(d["alarms"], serde_json::json!([]));
    until(&display, FITS, "fits 1366x768").await;
    screenshot(&display, "display-corridor-1366x768").await;
    display.close().await.unwrap();
}

#[tokio::test]
async fn the_kiosk_finds_the_pharmacy_and_draws_the_route_with_a_qr_code() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let kiosk = driver.page(Screen::Desktop { width: 1080, height: 1600 }).await;
    kiosk.goto(&app.url("/kiosk/K-A-L1")).await.unwrap();
    until(&kiosk, "document.querySelector('#here').textContent.includes('1F')", "you are here").await;
    kiosk.find(Locator::Css("#search")).await.unwrap().send_keys("药房").await.unwrap();
    kiosk.find(Locator::Css("#search-form button")).await.unwrap().click().await.unwrap();
    until(&kiosk, "document.querySelector('#results button[data-place=\"pharmacy\"]') !== null", "the pharmacy found").await;
    kiosk.find(Locator::Css("#results button[data-place=\"pharmacy\"]")).await.unwrap().click().await.unwrap();
    until(&kiosk, "!document.querySelector('#route').classList.contains('hidden')", "the route shown").await;
    until(&kiosk, "document.querySelectorAll('#steps li').length > 0", "turn-by-turn text").await;
    until(&kiosk, "[...document.querySelectorAll('#maps img')].length > 0 && [...document.querySelectorAll('#maps img')].every(i => i.complete && i.naturalWidth > 0)", "the route drawn on the floor map").await;
    until(&kiosk, "document.querySelector('#qr').complete && document.querySelector('#qr').naturalWidth > 0", "the QR code").await;
    let link = eval(&kiosk, "document.querySelector('#qr').dataset.link").await;
    assert!(link.as_str().unwrap().contains("/kiosk/K-A-L1?to=pharmacy"), "the QR carries the route: {link}");
    screenshot(&kiosk, "kiosk-route").await;

    // The phone that scans the QR opens the same route.
    let phone = driver.page(PHONE).await;
    phone.goto(link.as_str().unwrap()).await.unwrap();
    until(&phone, "!document.querySelector('#route').classList.contains('hidden') && document.querySelectorAll('#steps li').length > 0", "the route on the phone").await;
    // Large text for elderly readers, remembered; English on request.
    let before = eval(&phone, "parseFloat(getComputedStyle(document.querySelector('#steps')).fontSize)").await.as_f64().unwrap();
    phone.find(Locator::Css("#large")).await.unwrap().click().await.unwrap();
    until(&phone, &format!("parseFloat(getComputedStyle(document.querySelector('#steps')).fontSize) > {before} * 1.2"), "larger text").await;
    assert_eq!(eval(&phone, "localStorage.getItem('cf.large')").await, "1");
    phone.find(Locator::Css("#lang")).await.unwrap().click().await.unwrap();
    until(&phone, "document.querySelector('#route-title').textContent.includes('Pharmacy')", "the route in English").await;
    screenshot(&phone, "kiosk-route-phone-en").await;
    for c in [kiosk, phone] {
        c.close().await.unwrap();
    }
}

#[tokio::test]
async fn bad_links_and_tokens_say_so_with_a_way_back() {
    let app = spawn_app().await;
    let ticket = app.issue("internal-medicine", "p-bad").await;
    let driver = Driver::start().await;
    let page = driver.page(PHONE).await;
    page.goto(&app.url(&format!("/t/{}?token=not-the-token", ticket["id"].as_str().unwrap()))).await.unwrap();
    until(&page, "!document.querySelector('#problem').classList.contains('hidden')", "a clear message for a wrong token").await;
    let text = eval(&page, "document.querySelector('#problem').innerText").await;
    assert!(text.as_str().unwrap().contains("链接无效"), "{text}");
    assert_eq!(eval(&page, "document.querySelector('#problem a').getAttribute('href')").await, "/", "a way back");
    screenshot(&page, "patient-bad-link").await;

    page.goto(&app.url("/console")).await.unwrap();
    page.find(Locator::Css("#token")).await.unwrap().send_keys("wrong-token").await.unwrap();
    page.find(Locator::Css("#signin-btn")).await.unwrap().click().await.unwrap();
    until(&page, "!document.querySelector('#signin-error').classList.contains('hidden')", "the console refuses a wrong token").await;

    page.goto(&app.url("/display/no-such-display")).await.unwrap();
    until(&page, "document.body.innerText.includes('没有这块显示屏')", "an unknown display named").await;
    page.goto(&app.url("/kiosk/no-such-marker")).await.unwrap();
    until(&page, "document.body.innerText.includes('位置码无效')", "an unknown marker named").await;
    page.close().await.unwrap();
}

#[tokio::test]
async fn the_display_shows_a_lost_connection_and_recovers_after_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = start(dir.path(), None);
    app.issue("internal-medicine", "p-restart").await;
    let driver = Driver::start().await;
    let display = driver.page(Screen::Desktop { width: 1366, height: 768 }).await;
    display.goto(&app.url("/display/door-c-101")).await.unwrap();
    until(&display, "document.querySelector('.door .room') !== null", "the display is up").await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    app.kill9();
    until(&display, "!document.querySelector('#lost').classList.contains('hidden')", "the lost connection is shown").await;
    screenshot(&display, "display-connection-lost").await;
    let app = start_at(dir.path(), &addr);
    let t = app.call_next("internal-medicine", "c-101").await.unwrap();
    until(&display, "document.querySelector('#lost').classList.contains('hidden')", "reconnected by itself").await;
    until(&display, &format!("document.querySelector('#current-number').textContent === '{}'", t["number"].as_str().unwrap()), "the call after the restart").await;
    display.close().await.unwrap();
}

#[tokio::test]
async fn the_index_links_every_page_and_assets_are_embedded() {
    let app = spawn_app().await;
    let index = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert!(index.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    let body = index.text().await.unwrap();
    for link in ["/console", "/display/door-c-101", "/kiosk/K-A-L1"] {
        assert!(body.contains(&format!("href=\"{link}\"")), "index links {link}");
    }
    let css = app.client.get(app.url("/assets/style.css")).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css");
    let etag = css.headers()["etag"].to_str().unwrap().to_owned();
    assert!(css.text().await.unwrap().contains("Noto Sans CJK SC"), "the CJK font stack");
    let again = app.client.get(app.url("/assets/style.css")).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    let missing = app.client.get(app.url("/assets/nope.js")).send().await.unwrap();
    assert_eq!(crate::helpers::error_code(missing).await, (404, "not_found".to_owned()));
    // A browser display that names no configured display is told so before any upgrade.
    let r = app.client.get(app.url("/ws/displays/no-such-display")).send().await.unwrap();
    assert_eq!(crate::helpers::error_code(r).await, (404, "unknown_display".to_owned()));
    let qr = app.client.get(app.url("/api/v1/qr?text=https%3A%2F%2Fexample%2Fkiosk%2FK-A-L1")).send().await.unwrap();
    assert_eq!(qr.headers()["content-type"], "image/svg+xml; charset=utf-8");
    let long = "x".repeat(600);
    let r = app.client.get(app.url(&format!("/api/v1/qr?text={long}"))).send().await.unwrap();
    assert_eq!(crate::helpers::error_code(r).await, (400, "invalid_query".to_owned()));
}

#[tokio::test]
async fn the_patient_page_shows_the_next_stop_once_orders_exist() {
    let dir = tempfile::tempdir().unwrap();
    // The demo config without opening hours, so the plan does not depend on the time of day.
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo-hospital.toml")).unwrap();
    let text: String = text.lines().filter(|l| !l.starts_with("open =")).map(|l| format!("{l}\n")).collect();
    let cfg = dir.path().join("hospital.toml");
    std::fs::write(&cfg, text).unwrap();
    let app = crate::helpers::start_with_env(&dir.path().join("data"), Some(&cfg), &[("CLINICFLOW_REPLAN_SECS", "1")]);
    let t = app.issue("internal-medicine", "p-next").await;
    let driver = Driver::start().await;
    let phone = driver.page(PHONE).await;
    phone.goto(&app.url(t["patient_url"].as_str().unwrap())).await.unwrap();
    until(&phone, "document.querySelector('#number').textContent !== ''", "the ticket").await;
    assert_eq!(eval(&phone, "document.querySelector('#next-stop').classList.contains('hidden')").await, true, "no orders, no next stop");

    // The doctor orders an ECG and a return visit; the consultation ends.
    let orders = serde_json::json!({"orders": [{"id": "o-ecg", "code": "ECG"}, {"id": "o-ret", "code": "RETURN-IM"}]});
    assert_eq!(app.post("/api/v1/patients/p-next/orders", orders).await.status(), 200);
    let called = app.call_next("internal-medicine", "c-101").await.unwrap();
    assert_eq!(called["id"], t["id"]);
    assert_eq!(app.post_empty(&format!("/api/v1/tickets/{}/complete", t["id"].as_str().unwrap())).await.status(), 200);
    until(&phone, "!document.querySelector('#next-stop').classList.contains('hidden')", "the next stop appears").await;
    until(&phone, "document.querySelector('#next-text').textContent.includes('心电')", "the ECG is next").await;
    until(&phone, "document.querySelector('#next-reason').textContent.length > 0", "with its reason").await;
    until(&phone, "!document.querySelector('#route').classList.contains('hidden') && document.querySelector('#route-title').textContent.includes('心电')", "and the way there").await;
    screenshot(&phone, "patient-next-stop").await;
    phone.close().await.unwrap();
}

#[tokio::test]
async fn the_report_page_draws_the_days_numbers() {
    let app = spawn_app().await;
    for i in 0..4 {
        app.issue("internal-medicine", &format!("p-rep-{i}")).await;
    }
    app.issue("lab", "p-rep-lab").await;
    for _ in 0..2 {
        let t = app.call_next("internal-medicine", "c-101").await.unwrap();
        app.post_empty(&format!("/api/v1/tickets/{}/complete", t["id"].as_str().unwrap())).await;
    }
    let driver = Driver::start().await;
    let page = driver.page(DESKTOP).await;
    page.goto(&app.url("/reports")).await.unwrap();
    until(&page, "!document.querySelector('#signin').classList.contains('hidden')", "asks for a staff token").await;
    page.find(Locator::Css("#token")).await.unwrap().send_keys(TOKEN).await.unwrap();
    page.find(Locator::Css("#signin-btn")).await.unwrap().click().await.unwrap();
    until(&page, "document.querySelectorAll('#queues tbody tr').length === 2", "a row per queue with activity").await;
    until(&page, "document.querySelector('#date').value.length === 10", "the hospital's date filled in").await;
    let cells = eval(&page, "[...document.querySelectorAll('#queues tbody tr')].map(r => r.children[0].textContent + ':' + r.children[1].textContent + ':' + r.children[3].textContent)").await;
    assert!(cells.as_array().unwrap().iter().any(|c| c == "内科:4:2"), "internal medicine: 4 issued, 2 done: {cells}");
    until(&page, "document.querySelectorAll('#hours rect[data-kind=arrivals]').length > 0 && document.querySelectorAll('#waits rect[data-queue]').length === 1", "both charts drawn").await;
    let arrivals = eval(&page, "[...document.querySelectorAll('#hours rect[data-kind=arrivals]')].filter(r => +r.getAttribute('height') > 0).length").await;
    let arrivals = arrivals.as_u64().unwrap();
    assert!((1..=2).contains(&arrivals), "the check-ins fall in one hour (two if the clock turned): {arrivals}");
    screenshot(&page, "report").await;
    page.close().await.unwrap();
}
