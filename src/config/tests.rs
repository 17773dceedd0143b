//! The configuration's rules: files, flags, defaults and the example config.

use super::*;

#[test]
fn a_proxy_url_gives_its_address_and_credentials_and_never_shows_the_password() {
    let p = ProxySetting::parse("http://egress:s%3Acret@proxy.internal:3128").unwrap();
    assert_eq!(p.uri.to_string(), "http://proxy.internal:3128/");
    // base64("egress:s:cret")
    assert_eq!(
        p.authorization.as_ref().map(|h| h.to_str().unwrap()),
        Some("Basic ZWdyZXNzOnM6Y3JldA==")
    );
    assert!(!format!("{p} {p:?}").contains("cret"), "{p:?}");
    let plain = ProxySetting::parse("http://127.0.0.1").unwrap();
    assert_eq!(plain.uri.to_string(), "http://127.0.0.1:80/");
    assert!(plain.authorization.is_none());
    for bad in [
        "https://proxy:3128",
        "socks5://proxy:1080",
        "proxy:3128",
        "http://",
    ] {
        assert!(ProxySetting::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn flags_override_the_file_and_the_file_overrides_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookd.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:9001\"\ndb = \"from-file.db\"\ndurability = \"normal\"\n\
         max_in_flight = 640\npoll_interval = \"250ms\"\n",
    )
    .unwrap();
    let args = ServeArgs {
        db: Some(PathBuf::from("from-flag.db")),
        config: Some(path),
        ..ServeArgs::default()
    };
    let config = Config::load(args).unwrap();
    assert_eq!(config.db, PathBuf::from("from-flag.db"));
    assert_eq!(config.listen, "127.0.0.1:9001".parse().unwrap());
    assert_eq!(config.durability, Durability::Normal);
    assert_eq!(config.max_in_flight, 640);
    assert_eq!(config.poll_interval, Duration::from_millis(250));
    assert_eq!(config.max_in_flight_per_endpoint, 128, "default kept");
}

#[test]
fn a_bad_file_is_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookd.toml");
    std::fs::write(&path, "listen_on = \"x\"\n").unwrap();
    let err = Config::load(ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("listen_on"), "{err}");
    std::fs::write(&path, "poll_interval = \"soon\"\n").unwrap();
    let err = Config::load(ServeArgs {
        config: Some(path),
        ..ServeArgs::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("poll_interval"), "{err}");
}

#[test]
fn a_short_admin_token_is_refused() {
    let config = Config {
        admin_token: Some("short".into()),
        ..Config::default()
    };
    assert!(config.validate().is_err());
}

#[test]
fn a_postgres_url_is_a_valid_database() {
    let config = Config {
        db: "postgres://hookd@127.0.0.1/hookd".into(),
        ..Config::default()
    };
    assert!(config.validate().is_ok());
}

#[test]
fn the_example_config_holds_every_setting_at_its_default_and_its_commented_ones_parse() {
    let example = include_str!("../../examples/hookd.toml");
    let shipped: FileConfig = toml::from_str(example).expect("the example parses");
    let config = Config::build(ServeArgs::default(), shipped, &OtelEnv::default()).expect("valid");
    assert_eq!(
        format!("{config:?}"),
        format!("{:?}", Config::default()),
        "as shipped, the example changes nothing"
    );
    // Every commented setting is a key hookd takes, with a value it accepts.
    let uncommented: String = example
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if rest.starts_with('[') || rest.contains(" = ") => rest,
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let all: FileConfig = toml::from_str(&uncommented).expect("every setting parses");
    assert!(all.smtp.is_some() && all.proxy.is_some() && all.admin_token.is_some());
    Config::build(ServeArgs::default(), all, &OtelEnv::default()).expect("every setting is valid");
    // Every key hookd takes is in the example.
    let keys = [
        "listen",
        "db",
        "admin_token",
        "allow_private_targets",
        "allow_http",
        "durability",
        "max_body_bytes",
        "max_connections",
        "tls_cert",
        "tls_key",
        "ca_file",
        "proxy",
        "credentials_key_file",
        "header_read_timeout",
        "body_read_timeout",
        "max_in_flight",
        "max_in_flight_per_endpoint",
        "poll_interval",
        "shutdown_grace",
        "lease_margin",
        "retention",
        "failed_retention",
        "housekeeping_interval",
        "incoming_rate_limit",
        "email_retry_schedule",
        "otlp_endpoint",
        "metrics_top",
        "[smtp]",
    ];
    for key in keys {
        assert!(
            uncommented.contains(&format!("\n{key}")),
            "{key} is in the example"
        );
    }
}

#[test]
fn traces_go_to_the_flag_then_the_standard_variables_and_nowhere_by_default() {
    let none = OtelEnv::default();
    assert_eq!(otlp_settings(None, &none), Ok(None));
    let flag = otlp_settings(Some("http://127.0.0.1:4318/".into()), &none)
        .expect("valid")
        .expect("on");
    assert_eq!(flag.endpoint, "http://127.0.0.1:4318/v1/traces");
    assert_eq!((flag.service_name.as_str(), flag.queue), ("hookd", 2048));
    let env = OtelEnv {
        endpoint: Some("http://127.0.0.1:4318".into()),
        headers: Some("api-key=s%20cret".into()),
        resource_attributes: Some("service.name=relay,deployment.environment=prod".into()),
        max_queue_size: Some("64".into()),
        ..OtelEnv::default()
    };
    let from_env = otlp_settings(None, &env).expect("valid").expect("on");
    assert_eq!(from_env.endpoint, "http://127.0.0.1:4318/v1/traces");
    assert_eq!(from_env.headers, [("api-key".into(), "s cret".into())]);
    assert!(
        !format!("{from_env:?}").contains("s cret"),
        "a header's value is never shown"
    );
    assert_eq!(
        (from_env.service_name.as_str(), from_env.queue),
        ("relay", 64)
    );
    let traces = OtelEnv {
        traces_endpoint: Some("http://127.0.0.1:9999/custom".into()),
        service_name: Some("named".into()),
        ..env.clone()
    };
    let exact = otlp_settings(None, &traces).expect("valid").expect("on");
    assert_eq!(exact.endpoint, "http://127.0.0.1:9999/custom");
    assert_eq!(exact.service_name, "named");
    let disabled = OtelEnv {
        disabled: true,
        ..env
    };
    assert_eq!(otlp_settings(None, &disabled), Ok(None));
    for bad in ["127.0.0.1:4318", "ftp://collector", "http://"] {
        assert!(otlp_settings(Some(bad.into()), &none).is_err(), "{bad}");
    }
    let bad_queue = OtelEnv {
        max_queue_size: Some("lots".into()),
        ..OtelEnv::default()
    };
    let e = otlp_settings(Some("http://127.0.0.1:4318".into()), &bad_queue).expect_err("queue");
    assert!(e.0.contains("OTEL_BSP_MAX_QUEUE_SIZE"), "{}", e.0);
    let bad_headers = OtelEnv {
        headers: Some("Authorization Bearer s3cret".into()),
        ..OtelEnv::default()
    };
    let e = otlp_settings(Some("http://127.0.0.1:4318".into()), &bad_headers).expect_err("pair");
    assert!(!e.0.contains("s3cret"), "{}", e.0);
}
