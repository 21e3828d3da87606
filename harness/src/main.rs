use std::time::Duration;
use harness::browser::*;
use backends::*;

#[tokio::main]
async fn main() {
    let kind = if std::env::args().nth(1).as_deref() == Some("firefox") { BrowserKind::Firefox } else { BrowserKind::Chromium };
    let trust = match std::env::args().nth(2).as_deref() { Some("trusted") => TrustMode::TrustedCa, Some("devtools") => TrustMode::DevtoolsIgnore, Some("spki") => TrustMode::SpkiPin, Some("insecure") => TrustMode::AcceptInsecure, _ => TrustMode::ClickThrough };
    let bundle = certs::CertBundle::generate(certs::CertKind::SelfSigned).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = bundle.write_to(&dir.path().join("certs")).unwrap();
    let spec = ServerSpec::new(bundle.chain_pem.clone(), bundle.key_pem.clone(), TlsPin::Only(TlsVersion::Tls13), ConnectionPolicy::Close);
    let server = BackendName::Mbedtls.backend().start(spec).unwrap();
    let bins = match kind {
        BrowserKind::Chromium => BrowserBinaries { browser: "/usr/bin/chromium".into(), driver: "/usr/bin/chromedriver".into() },
        BrowserKind::Firefox => BrowserBinaries { browser: "/usr/bin/firefox-esr".into(), driver: "/root/.cargo/bin/geckodriver".into() },
    };
    let knobs = Knobs::default();
    let plan = SessionPlan { kind, binaries: &bins, trust, cert: &bundle, cert_files: &files, knobs: &knobs, dir: dir.path() };
    let t = std::time::Instant::now();
    let s = BrowserSession::start(&plan).await.unwrap();
    eprintln!("started {:?}", t.elapsed());
    let url = server.url("localhost");
    let shown = s.visit(&url).await;
    eprintln!("visit {:?} {:?}", shown, t.elapsed());
    tokio::time::sleep(Duration::from_millis(800)).await;
    for r in server.log().records() { eprintln!("  {} {}", r.id, serde_json::to_string(&r.outcome).unwrap()); }
    if trust == TrustMode::ClickThrough {
        let p = s.proceed().await;
        eprintln!("proceed {:?} {:?}", p, t.elapsed());
        tokio::time::sleep(Duration::from_millis(800)).await;
        for r in server.log().records() { eprintln!("  {} {}", r.id, serde_json::to_string(&r.outcome).unwrap()); }
    }
    let shown = s.visit(&url).await;
    eprintln!("revisit {:?} {:?}", shown, t.elapsed());
    s.close().await;
    for r in server.stop() { eprintln!("  {} {} {:?}", r.id, serde_json::to_string(&r.outcome).unwrap(), r.backend_code); }
}
