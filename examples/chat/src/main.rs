//! Runs the chat: `cargo run -p chat`, then open <http://127.0.0.1:4000/> in two browser tabs.
//!
//! `PORT` (default 4000; 0 picks a free port) and `SECRET_KEY_BASE` (at least 20 bytes; a
//! development default is used when unset) configure it.

use std::net::SocketAddr;

/// Signs the development tokens when `SECRET_KEY_BASE` is unset. Never use it in production.
const DEV_SECRET: &str = "chat-development-secret-key-base-change-me-0123456789";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let port: u16 = match std::env::var("PORT") {
        Ok(text) => text
            .parse()
            .map_err(|_| anyhow::anyhow!("PORT must be a port number, got {text:?}"))?,
        Err(_) => 4000,
    };
    let secret = std::env::var("SECRET_KEY_BASE").unwrap_or_else(|_| DEV_SECRET.to_owned());

    let chat = chat::Chat::new(&secret)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("chat listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        chat.router()
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
