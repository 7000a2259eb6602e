//! The OpenAPI document is served, parses, and every operation it lists exists.

use crate::helpers::{spawn_app, TOKEN};

#[tokio::test]
async fn every_documented_operation_exists() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app.client.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 10, "{} paths documented", paths.len());
    let default_server = doc["servers"][0]["url"].as_str().unwrap_or("");
    for (path, ops) in paths {
        let server = ops["servers"][0]["url"].as_str().unwrap_or(default_server).trim_end_matches('/');
        for (method, op) in ops.as_object().unwrap() {
            if !["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            assert!(op["responses"].is_object(), "{method} {path} documents its responses");
            let concrete = path
                .replace("{queue}", "internal-medicine")
                .replace("{ticket}", "t0")
                .replace("{room}", "c-101")
                .replace("{action}", "recall")
                .replace("{venue}", "demo-hospital")
                .replace("{file}", "A-L1.svg")
                .replace("{patient}", "p-openapi")
                .replace("{order}", "o-1")
                .replace("{tag}", "wb-openapi");
            let url = app.url(&format!("{server}{concrete}"));
            let req = match method.as_str() {
                "get" => app.client.get(url),
                "post" => app.client.post(url),
                // An empty body: refused as invalid JSON, so nothing changes.
                "put" => app.client.put(url),
                "delete" => app.client.delete(url),
                other => panic!("the server has no {other} routes"),
            };
            let r = req.bearer_auth(TOKEN).send().await.unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            let code = body["error"]["code"].as_str().unwrap_or("");
            assert!(code != "no_route" && code != "method_not_allowed" && status != 500, "{method} {path}: {status} {code}");
        }
    }
}
