//! What the engine prints on stdout when it is ready, for the scripts, tools and tests that start
//! it on port 0 and need to learn the address it got.

/// Printed once per bound address, followed by `http://ADDR`.
pub const LISTENING_ON: &str = "roomstate listening on ";

/// The line the engine prints for `addr`.
pub fn listening_line(addr: impl std::fmt::Display) -> String {
    format!("{LISTENING_ON}http://{addr}")
}

/// The base URL (`http://ADDR`) in a line the engine printed, if it is the listening line.
pub fn parse_listening_line(line: &str) -> Option<&str> {
    line.strip_prefix(LISTENING_ON)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_round_trips() {
        let line = listening_line("127.0.0.1:8080");
        assert_eq!(line, "roomstate listening on http://127.0.0.1:8080");
        assert_eq!(parse_listening_line(&line), Some("http://127.0.0.1:8080"));
        assert_eq!(parse_listening_line("admin token: x"), None);
    }
}
