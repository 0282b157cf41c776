//! A reader of the change feed (`GET /watch`) for the tests: the
//! server-sent events of one open response, parsed as they arrive.

use std::time::Duration;

use serde_json::Value;

use super::Server;

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event: String,
    pub id: String,
    pub data: Value,
}

impl Event {
    /// `(EPOCH, SEQ)` of the id, to compare them.
    pub fn order(&self) -> (u64, u64) {
        let (epoch, seq) = self.id.split_once('-').expect("EPOCH-SEQ");
        (epoch.parse().unwrap(), seq.parse().unwrap())
    }

    pub fn key(&self) -> &str {
        self.data["key"].as_str().unwrap_or("")
    }
}

/// An open feed.
pub struct Feed {
    response: reqwest::Response,
    buffer: String,
    /// Comment lines seen (heartbeats).
    pub comments: usize,
}

impl Feed {
    /// `GET /watch?QUERY` with an optional `Last-Event-ID` and token;
    /// asserts a 200 `text/event-stream`.
    pub async fn open(
        server: &Server,
        query: &str,
        last: Option<&str>,
        token: Option<&str>,
    ) -> Feed {
        let response = Feed::request(server, query, last, token).await;
        assert_eq!(response.status(), 200, "GET /watch?{query}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(content_type, "text/event-stream");
        Feed {
            response,
            buffer: String::new(),
            comments: 0,
        }
    }

    /// The answer to `GET /watch?QUERY`, whatever its status.
    pub async fn request(
        server: &Server,
        query: &str,
        last: Option<&str>,
        token: Option<&str>,
    ) -> reqwest::Response {
        // A client of its own: the harness's has a 60 s limit on the
        // whole exchange, which a feed outlives.
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut request = client.get(server.url(&format!("/watch?{query}")));
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("GET /watch")
    }

    /// The next event, or `None` if none comes within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(event) = self.parse_one() {
                return Some(event);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await;
            match chunk {
                Err(_) => return None,
                Ok(Ok(Some(bytes))) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                Ok(Ok(None)) => return None,
                Ok(Err(e)) => panic!("the feed broke: {e}"),
            }
        }
    }

    /// Whether the server ends the feed (cleanly or by closing the
    /// connection) within `wait`, with no other event before.
    pub async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(event) = self.parse_one() {
                panic!("an event where the end was expected: {event:?}");
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return false,
                Ok(Ok(Some(bytes))) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                Ok(Ok(None) | Err(_)) => return true,
            }
        }
    }

    /// The next event; fails the test if none comes within 10 s.
    pub async fn next(&mut self) -> Event {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("an event within 10 s")
    }

    /// The next `n` events.
    pub async fn take(&mut self, n: usize) -> Vec<Event> {
        let mut events = Vec::new();
        for _ in 0..n {
            events.push(self.next().await);
        }
        events
    }

    fn parse_one(&mut self) -> Option<Event> {
        loop {
            let end = self.buffer.find("\n\n")?;
            let block: String = self.buffer.drain(..end + 2).collect();
            let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
            let mut comment = false;
            for line in block.lines() {
                if line.starts_with(':') {
                    comment = true;
                } else if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_owned();
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = v.to_owned();
                }
            }
            if comment && event.is_empty() {
                self.comments += 1;
                continue;
            }
            let data: Value = serde_json::from_str(&data).expect("data is JSON");
            return Some(Event { event, id, data });
        }
    }
}
