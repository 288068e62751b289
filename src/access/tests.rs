//! Every rule of the module header, one sentence each, and every route against every kind of
//! caller (a session id, a view key, no token, a wrong token, a foreign origin, a foreign host).

use std::collections::HashMap;

use super::*;

const ID: &str = "0123456789abcdef0123456789abcdef";
const TOKEN: &str = "s3cret-token";
const OWN: &str = "http://127.0.0.1:8787";
const PARTNER: &str = "https://partner.example";
const BROWSER_KEY: &str = "00112233445566778899aabbccddeeff";

fn view_key() -> String {
    view::format_key(&"a".repeat(64), &"b".repeat(32))
}

fn cfg_with(pairs: &[(&str, &str)]) -> Config {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| m.get(k).cloned()).unwrap()
}

fn cfg() -> Config {
    cfg_with(&[
        ("BOTARMY_ACCESS_TOKEN", TOKEN),
        ("ALLOWED_ORIGINS", PARTNER),
    ])
}

/// A request as the edge reads it: by default the right token and host, no origin.
#[derive(Clone)]
struct Req {
    method: Method,
    path: String,
    query: Option<String>,
    host: String,
    origin: Option<String>,
    auth: Option<String>,
    protocols: Option<String>,
    upgrade: Option<String>,
    owner: Option<String>,
    blocked: Option<u64>,
}

fn req(method: Method, path: &str) -> Req {
    Req {
        method,
        path: path.into(),
        query: None,
        host: "127.0.0.1:8787".into(),
        origin: None,
        auth: Some(format!("Bearer {TOKEN}")),
        protocols: None,
        upgrade: None,
        owner: None,
        blocked: None,
    }
}

fn get(path: &str) -> Req {
    req(Method::Get, path)
}

impl Req {
    fn origin(mut self, o: &str) -> Req {
        self.origin = Some(o.into());
        self
    }
    fn auth(mut self, a: Option<&str>) -> Req {
        self.auth = a.map(str::to_string);
        self
    }
    fn protocols(mut self, p: &str) -> Req {
        self.protocols = Some(p.into());
        self
    }
    fn upgrade(mut self) -> Req {
        self.upgrade = Some("websocket".into());
        self
    }
    fn owner(mut self) -> Req {
        self.owner = Some(BROWSER_KEY.into());
        self
    }
    fn query(mut self, q: &str) -> Req {
        self.query = Some(q.into());
        self
    }
    fn host(mut self, h: &str) -> Req {
        self.host = h.into();
        self
    }
    fn blocked(mut self, ms: u64) -> Req {
        self.blocked = Some(ms);
        self
    }
    fn facts(&self) -> Facts<'_> {
        Facts {
            method: self.method,
            path: &self.path,
            query: self.query.as_deref(),
            host: &self.host,
            own_origin: OWN,
            origin: self.origin.as_deref(),
            authorization: self.auth.as_deref(),
            protocols: self.protocols.as_deref(),
            upgrade: self.upgrade.as_deref(),
            owner_key: self.owner.as_deref(),
            blocked_ms: self.blocked,
        }
    }
}

/// The decision under [`cfg`] (a token and one listed origin).
fn decision(r: &Req) -> Decision<'_> {
    decide(&r.facts(), &cfg())
}

fn grant(r: &Req) -> Grant<'_> {
    match decision(r).verdict {
        Verdict::Allow(g) => g,
        other => panic!("{} {}: {other:?}", r.path, r.method_name()),
    }
}

impl Req {
    fn method_name(&self) -> &'static str {
        match self.method {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other => "HEAD",
        }
    }
}

/// `(status, code)` of a refusal, `(200, "allowed")` or `(401, "wrong_token")`.
fn answer(r: &Req) -> (u16, &'static str) {
    match decision(r).verdict {
        Verdict::Allow(_) => (200, "allowed"),
        Verdict::Refuse(e) => (e.status, e.code.as_str()),
        Verdict::WrongToken => (401, "wrong_token"),
    }
}

fn message(r: &Req) -> String {
    match decision(r).verdict {
        Verdict::Refuse(e) => e.message,
        other => panic!("not refused: {other:?}"),
    }
}

// ---- Host, assets, the top-level routes ------------------------------------------------------

#[test]
fn a_host_that_is_not_this_workers_is_refused_before_anything_else() {
    for r in [
        get("/"),
        get("/api/health"),
        get(&format!("/api/sessions/{ID}")),
    ] {
        let r = r.host("attacker.example");
        assert_eq!(answer(&r), (421, "host_not_allowed"));
    }
    assert_eq!(answer(&get("/").host("localhost:9000")), (200, "allowed"));
    assert_eq!(
        answer(&get("/").host("botarmy.x.workers.dev")),
        (200, "allowed")
    );
}

#[test]
fn paths_outside_the_api_are_the_uis_assets_whatever_the_token() {
    for path in ["/", "/index.html", "/s/abc", "/api", "/apix/sessions"] {
        assert_eq!(grant(&get(path).auth(None)), Grant::Asset, "{path}");
    }
}

#[test]
fn health_asks_for_nothing() {
    let r = get("/api/health").auth(None).origin("https://evil.example");
    assert_eq!(grant(&r), Grant::Health);
}

#[test]
fn models_ask_for_the_token_only() {
    assert_eq!(
        grant(&get("/api/models").origin("https://evil.example")),
        Grant::Models
    );
    assert_eq!(
        answer(&get("/api/models").auth(None)),
        (401, "unauthorized")
    );
}

#[test]
fn creating_a_session_checks_the_origin_then_the_token_and_names_the_creators_list() {
    let r = req(Method::Post, "/api/sessions");
    assert!(matches!(grant(&r), Grant::CreateSession { owner: Some(_) }));
    let r = r.origin("https://evil.example").auth(Some("Bearer wrong"));
    assert_eq!(answer(&r), (403, "origin_not_allowed"));
    let open = cfg_with(&[]);
    let plain = req(Method::Post, "/api/sessions").auth(None);
    let d = decide(&plain.facts(), &open);
    assert_eq!(
        d.verdict,
        Verdict::Allow(Grant::CreateSession { owner: None })
    );
    let keyed = plain.owner();
    let d = decide(&keyed.facts(), &open);
    assert!(matches!(
        d.verdict,
        Verdict::Allow(Grant::CreateSession { owner: Some(_) })
    ));
}

#[test]
fn the_list_needs_the_token_then_an_owner_then_a_plain_query() {
    assert_eq!(
        answer(&get("/api/sessions").auth(None)),
        (401, "unauthorized")
    );
    let open = cfg_with(&[]);
    let anonymous = get("/api/sessions").auth(None);
    let d = decide(&anonymous.facts(), &open);
    assert!(
        matches!(&d.verdict, Verdict::Refuse(e) if e.code == HttpErrorCode::OwnerRequired),
        "{d:?}"
    );
    let r = get("/api/sessions").query("q=caf%C3%A9+bar&q=second");
    match grant(&r) {
        Grant::ListSessions { q, owner } => {
            assert_eq!(q, "café bar");
            assert!(!owner.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let control = get("/api/sessions").query("q=a%00b");
    assert_eq!(answer(&control), (400, "invalid_field"));
}

#[test]
fn other_methods_on_the_top_level_routes_are_405_before_any_token() {
    for (m, path) in [
        (Method::Post, "/api/health"),
        (Method::Delete, "/api/sessions"),
        (Method::Patch, "/api/models/"),
    ] {
        let r = req(m, path).auth(None);
        assert_eq!(answer(&r), (405, "method_not_allowed"), "{path}");
        assert_eq!(message(&r), "That method is not allowed here.");
    }
}

#[test]
fn unknown_api_paths_are_404_before_any_token() {
    for path in [
        "/api/",
        "/api/nope",
        "/api/sessions/x/y/z/agui/q",
        "/api/health/x",
    ] {
        assert_eq!(answer(&get(path).auth(None)), (404, "not_found"), "{path}");
    }
    assert_eq!(message(&get("/api/nope")), "Unknown route.");
}

// ---- Keys ------------------------------------------------------------------------------------

#[test]
fn a_key_that_is_neither_a_session_id_nor_a_view_key_is_404_before_anything_is_checked() {
    let bad = ["ABCDEF0123456789abcdef0123456789", "short", "v1234"];
    for key in bad {
        for (m, tail) in [
            (Method::Get, ""),
            (Method::Get, "/events"),
            (Method::Get, "/ws"),
            (Method::Post, "/agui"),
            (Method::Post, "/remember"),
            (Method::Patch, ""),
            (Method::Delete, ""),
            (Method::Post, "/views"),
        ] {
            let r = req(m, &format!("/api/sessions/{key}{tail}"))
                .auth(None)
                .origin("https://evil.example");
            assert_eq!(answer(&r), (404, "not_found"), "{key}{tail}");
            assert_eq!(message(&r), "No session with this id.");
        }
    }
}

#[test]
fn a_view_key_reads_and_streams_but_changes_nothing() {
    let key = view_key();
    for tail in [
        "",
        "/events",
        "/messages",
        "/export.jsonl",
        "/artifacts/analyst",
        "/files",
        "/files/src/app.js",
        "/project.zip",
    ] {
        match grant(&get(&format!("/api/sessions/{key}{tail}"))) {
            Grant::Read { read_only, .. } => assert!(read_only, "{tail}"),
            other => panic!("{tail}: {other:?}"),
        }
    }
    let ws = get(&format!("/api/sessions/{key}/ws")).upgrade();
    assert!(matches!(
        grant(&ws),
        Grant::Socket {
            read_only: true,
            ..
        }
    ));
    for (m, tail) in [
        (Method::Post, ""),
        (Method::Post, "/events"),
        (Method::Delete, ""),
        (Method::Patch, ""),
        (Method::Get, "/views"),
        (Method::Post, "/views"),
        (Method::Delete, "/views/abc"),
        (Method::Get, "/nope"),
        (Method::Get, "/artifacts/a/b"),
        (Method::Other, "/events"),
    ] {
        let r = req(m, &format!("/api/sessions/{key}{tail}"));
        assert_eq!(answer(&r), (403, "read_only"), "{tail}");
    }
}

#[test]
fn a_view_key_asking_to_change_something_is_asked_for_its_token_first() {
    let key = view_key();
    for (m, tail) in [
        (Method::Patch, ""),
        (Method::Delete, ""),
        (Method::Post, "/views"),
    ] {
        let r = req(m, &format!("/api/sessions/{key}{tail}"));
        assert_eq!(
            answer(&r.clone().auth(None)),
            (401, "unauthorized"),
            "{tail}"
        );
        assert_eq!(answer(&r.auth(Some("Bearer no"))), (401, "wrong_token"));
    }
}

#[test]
fn a_session_id_gets_every_route_with_its_session_path() {
    let p = |t: &str| format!("/api/sessions/{ID}{t}");
    let read = |t: &str, q: Option<&str>| {
        let mut r = get(&p(t));
        r.query = q.map(str::to_string);
        match grant(&r) {
            Grant::Read {
                key,
                target,
                read_only: false,
            } => {
                assert_eq!(key, ID);
                target
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(read("", Some("x=1")), "/snapshot");
    assert_eq!(read("/events", Some("after=3")), "/events?after=3");
    assert_eq!(read("/messages", Some("")), "/messages?");
    assert_eq!(read("/export.jsonl", Some("a=1")), "/export");
    assert_eq!(
        read("/artifacts/tester", Some("version=2")),
        "/artifacts/tester?version=2"
    );
    assert_eq!(read("/files/", None), "/files");
    assert_eq!(
        read("/files/src/a%20b.js", Some("version=1")),
        "/files/src/a%20b.js?version=1"
    );
    assert_eq!(read("/files//x", None), "/files//x");
    assert_eq!(read("/project.zip", None), "/project.zip");
    assert_eq!(
        grant(&req(Method::Delete, &p(""))),
        Grant::Delete { id: ID }
    );
    assert_eq!(
        grant(&req(Method::Patch, &p("/"))),
        Grant::Rename { id: ID }
    );
    assert_eq!(
        grant(&req(Method::Delete, &p("/views/abc"))),
        Grant::Views {
            id: ID,
            target: "/views/abc".into()
        }
    );
    assert_eq!(
        grant(&get(&p("/ws")).upgrade()),
        Grant::Socket {
            key: ID,
            read_only: false
        }
    );
}

// ---- Origin and token --------------------------------------------------------------------

#[test]
fn a_foreign_origin_may_read_but_not_change_create_or_connect() {
    let p = |t: &str| format!("/api/sessions/{ID}{t}");
    let evil = "https://evil.example";
    for r in [
        get(&p("/events")),
        get(&p("")),
        get(&p("/views")),
        get("/api/sessions"),
    ] {
        assert_eq!(answer(&r.origin(evil)), (200, "allowed"));
    }
    for r in [
        req(Method::Post, "/api/sessions"),
        req(Method::Post, &p("/views")),
        req(Method::Delete, &p("/views/abc")),
        req(Method::Delete, &p("")),
        req(Method::Patch, &p("")),
        req(Method::Post, &p("/remember")),
        req(Method::Post, &p("/agui")),
        get(&p("/ws")).upgrade(),
    ] {
        let path = r.path.clone();
        assert_eq!(
            answer(&r.origin(evil)),
            (403, "origin_not_allowed"),
            "{path}"
        );
    }
}

#[test]
fn the_own_origin_and_listed_origins_pass_with_or_without_a_trailing_slash() {
    let r = req(Method::Post, "/api/sessions");
    assert_eq!(answer(&r.clone().origin(OWN)), (200, "allowed"));
    assert_eq!(
        answer(&r.clone().origin("https://partner.example/")),
        (200, "allowed")
    );
}

#[test]
fn a_blocked_client_is_refused_before_its_token_is_looked_at() {
    let r = get("/api/models").blocked(1500);
    let d = decision(&r);
    let Verdict::Refuse(e) = d.verdict else {
        panic!("{d:?}")
    };
    assert_eq!((e.status, e.code), (429, HttpErrorCode::TooManyFailures));
    assert_eq!(e.retry_after_secs(), Some(2));
    // Where no token is asked, a block changes nothing.
    assert_eq!(answer(&get("/api/health").blocked(1500)), (200, "allowed"));
    assert_eq!(answer(&get("/").blocked(1500)), (200, "allowed"));
}

#[test]
fn no_token_at_all_is_not_a_guess_but_a_wrong_one_is() {
    assert_eq!(
        answer(&get("/api/models").auth(None)),
        (401, "unauthorized")
    );
    assert_eq!(
        answer(&get("/api/models").auth(Some("Bearer "))),
        (401, "unauthorized")
    );
    assert_eq!(
        answer(&get("/api/models").auth(Some("Basic x"))),
        (401, "unauthorized")
    );
    assert_eq!(
        answer(&get("/api/models").auth(Some("Bearer x"))),
        (401, "wrong_token")
    );
    assert_eq!(wrong_token(None), unauthorized());
    assert_eq!(wrong_token(Some(60_000)), too_many_failures(60_000));
}

#[test]
fn the_bearer_scheme_is_case_insensitive_and_the_token_is_trimmed() {
    let r = get("/api/models").auth(Some(&format!("bEaReR   {TOKEN} ")));
    assert_eq!(answer(&r), (200, "allowed"));
}

#[test]
fn a_socket_may_offer_its_token_as_a_subprotocol() {
    let r = get(&format!("/api/sessions/{ID}/ws"))
        .upgrade()
        .auth(None)
        .protocols(&format!("botarmy.v1, botarmy.token.{TOKEN}"));
    assert!(matches!(grant(&r), Grant::Socket { .. }));
    let wrong = r.clone().protocols("botarmy.v1, botarmy.token.nope");
    assert_eq!(answer(&wrong), (401, "wrong_token"));
    let none = r.protocols("botarmy.v1, botarmy.token.");
    assert_eq!(answer(&none), (401, "unauthorized"));
}

#[test]
fn without_an_access_token_configured_no_token_is_asked_nor_a_block_honoured() {
    let open = cfg_with(&[]);
    for r in [
        get("/api/models"),
        get(&format!("/api/sessions/{ID}/events")),
        req(Method::Delete, &format!("/api/sessions/{ID}")),
    ] {
        let r = r.auth(Some("Bearer anything")).blocked(10);
        assert!(matches!(
            decide(&r.facts(), &open).verdict,
            Verdict::Allow(_)
        ));
    }
}

// ---- Sockets, reads, views, delete, rename, remember -----------------------------------------

#[test]
fn a_socket_needs_an_upgrade_before_its_origin_and_token_and_then_a_get() {
    let p = format!("/api/sessions/{ID}/ws");
    let plain = get(&p).auth(None).origin("https://evil.example");
    assert_eq!(answer(&plain), (426, "upgrade_required"));
    assert!(message(&plain).starts_with("This endpoint speaks WebSocket"));
    let post = req(Method::Post, &p).upgrade();
    assert_eq!(answer(&post), (405, "method_not_allowed"));
    assert_eq!(message(&post), "Use GET here.");
    let mut upper = get(&p);
    upper.upgrade = Some("WebSocket".into());
    assert!(matches!(grant(&upper), Grant::Socket { .. }));
}

#[test]
fn a_read_checks_the_token_then_the_method() {
    let p = format!("/api/sessions/{ID}/events");
    assert_eq!(
        answer(&req(Method::Post, &p).auth(None)),
        (401, "unauthorized")
    );
    assert_eq!(answer(&req(Method::Post, &p)), (405, "method_not_allowed"));
    assert_eq!(answer(&req(Method::Other, &p)), (405, "method_not_allowed"));
}

#[test]
fn an_unknown_part_of_a_session_is_404_after_the_token_and_405_for_other_methods() {
    let p = format!("/api/sessions/{ID}/nope/deeper");
    assert_eq!(answer(&get(&p).auth(None)), (401, "unauthorized"));
    assert_eq!(answer(&get(&p)), (404, "not_found"));
    assert_eq!(message(&get(&p)), "Unknown route.");
    assert_eq!(answer(&req(Method::Post, &p)), (405, "method_not_allowed"));
    let agui_deeper = format!("/api/sessions/{ID}/agui/x");
    assert_eq!(answer(&get(&agui_deeper)), (404, "not_found"));
}

#[test]
fn views_check_the_origin_only_for_a_change_and_keep_the_method() {
    let p = format!("/api/sessions/{ID}/views");
    assert_eq!(
        answer(&get(&p).origin("https://evil.example")),
        (200, "allowed")
    );
    assert_eq!(answer(&get(&p).auth(None)), (401, "unauthorized"));
    assert_eq!(
        grant(&req(Method::Post, &p)),
        Grant::Views {
            id: ID,
            target: "/views".into()
        }
    );
    // Methods the views do not take are the session's to answer.
    assert!(matches!(
        grant(&req(Method::Patch, &p)),
        Grant::Views { .. }
    ));
}

#[test]
fn renaming_checks_the_origin_then_the_token() {
    let p = format!("/api/sessions/{ID}");
    let r = req(Method::Patch, &p);
    assert_eq!(answer(&r.clone().auth(None)), (401, "unauthorized"));
    let both = r.origin("https://evil.example").auth(None);
    assert_eq!(answer(&both), (403, "origin_not_allowed"));
}

#[test]
fn remembering_takes_a_session_id_or_a_view_key_an_owner_and_post_or_delete() {
    let key = view_key();
    for k in [ID, key.as_str()] {
        let p = format!("/api/sessions/{k}/remember");
        assert!(matches!(grant(&req(Method::Post, &p)), Grant::Remember { key, .. } if key == k));
        assert!(matches!(grant(&req(Method::Delete, &p)), Grant::Forget { key, .. } if key == k));
        let r = get(&p);
        assert_eq!(answer(&r), (405, "method_not_allowed"));
        assert_eq!(message(&r), "Use POST or DELETE here.");
        let evil = req(Method::Post, &p)
            .origin("https://evil.example")
            .auth(None);
        assert_eq!(answer(&evil), (403, "origin_not_allowed"));
    }
    let open = cfg_with(&[]);
    let anonymous = req(Method::Post, &format!("/api/sessions/{ID}/remember"));
    let d = decide(&anonymous.facts(), &open);
    assert!(matches!(&d.verdict, Verdict::Refuse(e) if e.code == HttpErrorCode::OwnerRequired));
    let wrong_method_without_owner = get(&format!("/api/sessions/{ID}/remember"));
    let d = decide(&wrong_method_without_owner.facts(), &open);
    assert!(matches!(&d.verdict, Verdict::Refuse(e) if e.code == HttpErrorCode::OwnerRequired));
}

// ---- AG-UI -------------------------------------------------------------------------------

#[test]
fn agui_refuses_a_view_key_without_asking_for_its_token() {
    let p = format!("/api/sessions/{}/agui", view_key());
    for m in [Method::Post, Method::Get, Method::Options] {
        let r = req(m, &p).auth(Some("Bearer wrong"));
        assert_eq!(answer(&r), (403, "read_only"));
        assert_eq!(decision(&r).cors, None);
    }
}

#[test]
fn agui_answers_a_preflight_only_for_a_listed_origin_and_asks_no_token() {
    let p = format!("/api/sessions/{ID}/agui");
    let ok = req(Method::Options, &p).origin(PARTNER).auth(None);
    let d = decision(&ok);
    assert_eq!(d.verdict, Verdict::Allow(Grant::AguiPreflight));
    assert_eq!(d.cors.as_deref(), Some(PARTNER));
    for origin in [Some(OWN), Some("https://evil.example"), None] {
        let mut r = req(Method::Options, &p);
        r.origin = origin.map(str::to_string);
        assert_eq!(answer(&r), (403, "origin_not_allowed"), "{origin:?}");
        assert_eq!(decision(&r).cors, None);
    }
}

#[test]
fn agui_puts_cors_on_every_answer_to_a_listed_origin_refusals_included() {
    let p = format!("/api/sessions/{ID}/agui");
    let r = req(Method::Post, &p).origin(PARTNER);
    let d = decision(&r);
    assert_eq!(d.verdict, Verdict::Allow(Grant::AguiRun { id: ID }));
    assert_eq!(d.cors.as_deref(), Some(PARTNER));
    let no_token = r.clone().auth(None);
    let d = decision(&no_token);
    assert!(matches!(d.verdict, Verdict::Refuse(_)));
    assert_eq!(d.cors.as_deref(), Some(PARTNER));
    let own = r.origin(OWN);
    assert_eq!(decision(&own).cors, None);
}

#[test]
fn agui_checks_the_origin_then_the_token_then_takes_get_or_post() {
    let p = format!("/api/sessions/{ID}/agui");
    let r = get(&p).query("after=12");
    assert_eq!(
        grant(&r),
        Grant::AguiResume {
            id: ID,
            target: "/agui?after=12".into()
        }
    );
    let evil = req(Method::Post, &p)
        .origin("https://evil.example")
        .auth(None);
    assert_eq!(answer(&evil), (403, "origin_not_allowed"));
    assert_eq!(
        answer(&req(Method::Post, &p).auth(None)),
        (401, "unauthorized")
    );
    let del = req(Method::Delete, &p);
    assert_eq!(answer(&del), (405, "method_not_allowed"));
    assert_eq!(
        message(&del),
        "Use POST (a RunAgentInput) or GET ?after=<seq> here."
    );
}

// ---- Every route against every caller ------------------------------------------------------

/// Each route (method, path after `/api/sessions/{key}`, or a whole path) against: the right
/// token, no token, a wrong token, a foreign origin (with the right token), a foreign host,
/// and the same request through a view key (with the right token).
#[test]
fn every_route_against_every_kind_of_caller() {
    type Row = (Method, &'static str, [&'static str; 6]);
    // control, no token, wrong token, foreign origin, foreign host, view key
    let rows: &[Row] = &[
        (
            Method::Get,
            "/api/health",
            ["ok", "ok", "ok", "ok", "421", "-"],
        ),
        (
            Method::Get,
            "/api/models",
            ["ok", "401", "guess", "ok", "421", "-"],
        ),
        (
            Method::Post,
            "/api/sessions",
            ["ok", "401", "guess", "403o", "421", "-"],
        ),
        (
            Method::Get,
            "/api/sessions",
            ["ok", "401", "guess", "ok", "421", "-"],
        ),
        (Method::Get, "", ["ok", "401", "guess", "ok", "421", "ok"]),
        (
            Method::Get,
            "/events",
            ["ok", "401", "guess", "ok", "421", "ok"],
        ),
        (
            Method::Get,
            "/messages",
            ["ok", "401", "guess", "ok", "421", "ok"],
        ),
        (
            Method::Get,
            "/export.jsonl",
            ["ok", "401", "guess", "ok", "421", "ok"],
        ),
        (
            Method::Get,
            "/artifacts/analyst",
            ["ok", "401", "guess", "ok", "421", "ok"],
        ),
        (
            Method::Get,
            "/files",
            ["ok", "401", "guess", "ok", "421", "ok"],
        ),
        (
            Method::Get,
            "/files/a.js",
            ["ok", "401", "guess", "ok", "421", "ok"],
        ),
        (
            Method::Get,
            "/project.zip",
            ["ok", "401", "guess", "ok", "421", "ok"],
        ),
        (
            Method::Get,
            "/ws",
            ["ok", "401", "guess", "403o", "421", "ok"],
        ),
        (
            Method::Post,
            "/agui",
            ["ok", "401", "guess", "403o", "421", "403r"],
        ),
        (
            Method::Get,
            "/agui",
            ["ok", "401", "guess", "403o", "421", "403r"],
        ),
        (
            Method::Post,
            "/remember",
            ["ok", "401", "guess", "403o", "421", "ok"],
        ),
        (
            Method::Delete,
            "/remember",
            ["ok", "401", "guess", "403o", "421", "ok"],
        ),
        (
            Method::Patch,
            "",
            ["ok", "401", "guess", "403o", "421", "403r"],
        ),
        (
            Method::Delete,
            "",
            ["ok", "401", "guess", "403o", "421", "403r"],
        ),
        (
            Method::Get,
            "/views",
            ["ok", "401", "guess", "ok", "421", "403r"],
        ),
        (
            Method::Post,
            "/views",
            ["ok", "401", "guess", "403o", "421", "403r"],
        ),
        (
            Method::Delete,
            "/views/abc",
            ["ok", "401", "guess", "403o", "421", "403r"],
        ),
    ];
    let short = |a: (u16, &str)| match a {
        (200, _) => "ok",
        (401, "unauthorized") => "401",
        (401, "wrong_token") => "guess",
        (403, "origin_not_allowed") => "403o",
        (403, "read_only") => "403r",
        (421, _) => "421",
        _ => "other",
    };
    let vk = view_key();
    for &(method, path, want) in rows {
        let whole = |key: &str| {
            if path.starts_with("/api/") {
                path.to_string()
            } else {
                format!("/api/sessions/{key}{path}")
            }
        };
        let base = req(method, &whole(ID)).upgrade().owner();
        let callers = [
            base.clone(),
            base.clone().auth(None),
            base.clone().auth(Some("Bearer wrong")),
            base.clone().origin("https://evil.example"),
            base.clone().host("attacker.example"),
            req(method, &whole(&vk)).upgrade().owner(),
        ];
        for (i, (r, want)) in callers.iter().zip(want).enumerate() {
            if want == "-" {
                continue;
            }
            assert_eq!(short(answer(r)), want, "{:?} {path}, caller {i}", method);
        }
    }
}

// ---- The view-key allowlist and the session's paths --------------------------------------

#[test]
fn the_view_key_allowlist_is_the_reads_the_socket_and_remember() {
    for ok in [
        "/snapshot",
        "/events",
        "/messages",
        "/export",
        "/files",
        "/files/a/b.js",
        "/project.zip",
        "/artifacts/analyst",
        "/ws",
        "/remember",
    ] {
        assert!(viewer_may(ok), "{ok}");
    }
    for no in [
        "/delete",
        "/views",
        "/views/abc",
        "/rename",
        "/agui",
        "/init",
        "/nope",
        "",
    ] {
        assert!(!viewer_may(no), "{no}");
    }
}

#[test]
fn every_read_target_names_its_read_again() {
    for read in [
        Read::Snapshot,
        Read::Events,
        Read::Messages,
        Read::Export,
        Read::Artifact("tester"),
        Read::Files,
        Read::File("src/a%2Fb.js"),
        Read::ProjectZip,
    ] {
        let target = read.target(None);
        assert_eq!(Read::from_target(&target), Some(read));
        assert!(viewer_may(&target));
    }
}

#[test]
fn a_query_parameter_is_decoded_as_a_url_parser_decodes_it() {
    assert_eq!(query_param("q=a+b%20c", "q").as_deref(), Some("a b c"));
    assert_eq!(query_param("x=1&q=&q=2", "q").as_deref(), Some(""));
    assert_eq!(query_param("q", "q").as_deref(), Some(""));
    assert_eq!(query_param("%71=z", "q").as_deref(), Some("z"));
    assert_eq!(query_param("q=100%", "q").as_deref(), Some("100%"));
    assert_eq!(query_param("q=%zz%4", "q").as_deref(), Some("%zz%4"));
    assert_eq!(query_param("q=%FF", "q").as_deref(), Some("\u{FFFD}"));
    assert_eq!(query_param("a=1", "q"), None);
    assert_eq!(query_param("", "q"), None);
}

/// The endpoint table of `docs/protocol.md`: each row names a route here, and a session id
/// with the token gets it.
#[test]
fn every_endpoint_the_docs_list_is_a_route_a_session_id_may_take() {
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/protocol.md"),
    )
    .unwrap();
    let mut n = 0;
    for line in docs.lines() {
        let Some(cell) = line.strip_prefix("| `") else {
            continue;
        };
        let Some((method, rest)) = cell.split_once(' ') else {
            continue;
        };
        let method = match method {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => continue,
        };
        let url = rest.split('`').next().unwrap_or_default();
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (url, None),
        };
        let path = path
            .replace("{key}", ID)
            .replace("{id}", ID)
            .replace("{stage}", "analyst")
            .replace("{path}", "src/app.js")
            .replace("{viewId}", "abc");
        let mut r = req(method, &path).upgrade().owner();
        r.query = query.map(|q| q.replace('…', "x"));
        assert!(
            matches!(decision(&r).verdict, Verdict::Allow(_)),
            "{url}: {:?}",
            decision(&r).verdict
        );
        n += 1;
    }
    assert!(n >= 20, "only {n} endpoints found in docs/protocol.md");
}
