//! The client against a scripted server on a real socket: what goes on the wire, and how the
//! answers a node may give (plain, chunked, a redirect, silence, nobody) come back.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use http_client::{Error, Method, Origin, Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A server that answers one connection with `response` and reports the request it read and
/// the peer's address.
async fn answer_once(
    response: &'static str,
) -> (SocketAddr, oneshot::Receiver<(String, SocketAddr)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, peer) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        // Read the head and a body of Content-Length bytes.
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        stream.write_all(response.as_bytes()).await.unwrap();
        let _ = stream.shutdown().await;
        let _ = tx.send((String::from_utf8_lossy(&request).into_owned(), peer));
    });
    (addr, rx)
}

#[tokio::test]
async fn a_get_carries_host_credentials_and_close_and_reads_a_plain_body() {
    let (addr, seen) =
        answer_once("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: 1\r\nx-a: 2\r\n\r\n{}").await;
    let response = Request::get(&format!("http://{addr}/admin/aggregate.json?x=1"))
        .unwrap()
        .basic_auth("admin", "secret")
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.text(), "{}");
    assert_eq!(
        response.header("x-a"),
        Some("1"),
        "the first of repeated headers"
    );
    let (request, _) = seen.await.unwrap();
    let request = request.to_ascii_lowercase();
    assert!(
        request.starts_with("get /admin/aggregate.json?x=1 http/1.1\r\n"),
        "{request}"
    );
    assert!(request.contains(&format!("host: {addr}\r\n")), "{request}");
    assert!(request.contains("connection: close\r\n"), "{request}");
    // base64("admin:secret")
    assert!(
        request.contains("authorization: basic ywrtaw46c2vjcmv0\r\n"),
        "{request}"
    );
}

#[tokio::test]
async fn a_chunked_body_is_decoded_and_a_post_sends_its_body() {
    let (addr, seen) = answer_once(
        "HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n",
    )
    .await;
    let response = Origin::from_addr(addr)
        .request(Method::POST, "/checkout")
        .bearer_auth("t0ken")
        .body("application/x-www-form-urlencoded", "a=1&b=2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.text(), "{\"a\":1}");
    let (request, _) = seen.await.unwrap();
    assert!(
        request.starts_with("POST /checkout HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains("authorization: Bearer t0ken\r\n"),
        "{request}"
    );
    assert!(request.contains("content-length: 7\r\n"), "{request}");
    assert!(request.ends_with("\r\n\r\na=1&b=2"), "{request}");
}

#[tokio::test]
async fn a_redirect_is_returned_not_followed() {
    let (addr, _seen) = answer_once(
        "HTTP/1.1 302 Found\r\nlocation: /elsewhere\r\nset-cookie: s=1; path=/\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    let response = Request::get(&format!("http://{addr}/"))
        .unwrap()
        .send()
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::FOUND);
    assert_eq!(response.header("location"), Some("/elsewhere"));
    assert_eq!(response.header("set-cookie"), Some("s=1; path=/"));
}

#[tokio::test]
async fn a_request_can_come_from_another_local_address() {
    let (addr, seen) = answer_once("HTTP/1.1 204 No Content\r\n\r\n").await;
    let source = "127.0.0.7".parse().unwrap();
    let response = Request::get(&format!("http://{addr}/"))
        .unwrap()
        .local_address(source)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    let (_, peer) = seen.await.unwrap();
    assert_eq!(peer.ip(), source);
}

#[tokio::test]
async fn silence_times_out_and_nobody_fails_to_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limit = Duration::from_millis(200);
    let silent = Request::get(&format!("http://{addr}/"))
        .unwrap()
        .timeout(limit)
        .send()
        .await;
    assert!(
        matches!(silent, Err(Error::Timeout { limit: l, .. }) if l == limit),
        "{silent:?}"
    );
    drop(listener);
    let nobody = Request::get(&format!("http://{addr}/"))
        .unwrap()
        .send()
        .await;
    assert!(matches!(nobody, Err(Error::Connect { .. })), "{nobody:?}");
    let message = nobody.unwrap_err().to_string();
    assert!(message.contains(&addr.to_string()), "{message}");
}

#[tokio::test]
async fn an_answer_cut_short_is_an_exchange_error() {
    let (addr, _seen) = answer_once("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}").await;
    let cut = Request::get(&format!("http://{addr}/"))
        .unwrap()
        .send()
        .await;
    assert!(matches!(cut, Err(Error::Exchange { .. })), "{cut:?}");
}

#[tokio::test]
async fn an_invalid_header_fails_the_send() {
    let result = Request::get("http://127.0.0.1:9/")
        .unwrap()
        .header("x-bad", "line\nbreak")
        .send()
        .await;
    assert!(
        matches!(result, Err(Error::InvalidRequest(_))),
        "{result:?}"
    );
}
