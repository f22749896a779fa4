//! The pages: `/` runs the book's `socket.js` demos as user 1; `/tracked?user_id=<id>` only joins
//! `tracked` as that user (chapter 10). Both embed `window.authToken` for `/auth_socket`.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use channels::assets::PHOENIX_MIN_JS;
use serde::Deserialize;

use crate::app::AppState;

const INDEX: &str = include_str!("../assets/index.html");
const SOCKET_JS: &str = include_str!("../assets/socket.js");

/// The user the book's page controller pretends is logged in.
const FAKE_USER_ID: &str = "1";

#[derive(Deserialize)]
struct TrackedQuery {
    user_id: Option<String>,
}

/// The pages' routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/tracked", get(tracked))
        .route(
            "/js/socket.js",
            get(|| async { ([(CONTENT_TYPE, "text/javascript")], SOCKET_JS) }),
        )
        .route(
            "/js/phoenix.mjs",
            get(|| async { ([(CONTENT_TYPE, "text/javascript")], PHOENIX_MIN_JS) }),
        )
}

/// Text safe inside a double-quoted JavaScript string in a `<script>` element.
fn js_string(value: &str) -> String {
    let json = serde_json::Value::String(value.to_owned()).to_string();
    json[1..json.len() - 1]
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
}

fn render(app: &AppState, user_id: &str, demos: bool) -> Response {
    match app.tokens.sign(user_id) {
        Ok(token) => Html(
            INDEX
                .replace("{{AUTH_TOKEN}}", &js_string(&token))
                .replace("{{USER_ID}}", &js_string(user_id))
                .replace("{{DEMOS}}", if demos { "true" } else { "false" }),
        )
        .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

async fn index(State(app): State<AppState>) -> Response {
    render(&app, FAKE_USER_ID, true)
}

async fn tracked(State(app): State<AppState>, Query(query): Query<TrackedQuery>) -> Response {
    let user_id = query.user_id.unwrap_or_else(|| FAKE_USER_ID.to_owned());
    render(&app, &user_id, false)
}

#[cfg(test)]
mod tests {
    use super::js_string;

    #[test]
    fn user_input_cannot_leave_the_string() {
        assert_eq!(
            js_string(r#"a"</script><b>"#),
            r#"a\"\u003c/script\u003e\u003cb\u003e"#
        );
    }
}
