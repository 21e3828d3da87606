//! `harness serve`: one backend by hand, printing every connection record.

use std::path::PathBuf;

use anyhow::Context;
use backends::{BackendName, ServerSpec, TlsPin};
use certs::CertBundle;
use clap::Args;

use super::{
    BackendArg, CertArg, ConcurrencyArg, ConnectionArg, Failure, TlsArg, shutdown_signal, usage,
};

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// TLS library.
    #[arg(long, value_enum)]
    backend: BackendArg,
    /// Pin the server to this TLS version (default: accept 1.2 and 1.3).
    #[arg(long, value_enum)]
    tls: Option<TlsArg>,
    /// Certificate kind.
    #[arg(long, value_enum, default_value = "self-signed")]
    cert: CertArg,
    /// Close after every response (like `ssl_server`) or keep connections alive.
    #[arg(long, value_enum, default_value = "close")]
    connection: ConnectionArg,
    /// Serve connections in parallel, or one at a time like Mbed TLS's `ssl_server` (accept,
    /// handshake, one request answered HTTP/1.0 with the body ending at close, close; the next
    /// connection waits in the kernel's accept queue). `one-at-a-time` needs `--connection close`.
    #[arg(long, value_enum, default_value = "parallel")]
    concurrency: ConcurrencyArg,
    /// The listen(2) backlog (default: the standard library's for parallel, 10 — Mbed TLS's —
    /// for one-at-a-time).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::scenario::MAX_BACKLOG)))]
    listen_backlog: Option<u32>,
    /// Offer session resumption.
    #[arg(long)]
    resumption: bool,
    /// Where to write the certificate files (default: a temporary folder).
    #[arg(long)]
    cert_dir: Option<PathBuf>,
    /// Listen on this loopback port (default: a free one), e.g. for `tcpdump -i lo port N`.
    #[arg(long)]
    port: Option<u16>,
}

pub(super) async fn serve(args: ServeArgs) -> Result<u8, Failure> {
    let backend: BackendName = args.backend.into();
    if args.concurrency == ConcurrencyArg::OneAtATime && args.connection == ConnectionArg::KeepAlive
    {
        return Err(usage(anyhow::anyhow!(
            "--concurrency one-at-a-time answers HTTP/1.0 and closes after every response, like ssl_server; it needs --connection close"
        )));
    }
    let bundle = CertBundle::generate(args.cert.into()).context("generating the certificate")?;
    let (dir, _temp) = match &args.cert_dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("handshake-matrix-serve-")
                .tempdir()
                .context("temporary folder")?;
            (t.path().to_owned(), Some(t))
        }
    };
    let files = bundle.write_to(&dir).context("writing the certificate")?;
    let tls = args
        .tls
        .map(|t| TlsPin::Only(t.into()))
        .unwrap_or(TlsPin::Both);
    let mut spec = ServerSpec::new(
        bundle.chain_pem.clone(),
        bundle.key_pem.clone(),
        tls,
        args.connection.into(),
    );
    spec.resumption = args.resumption;
    spec.concurrency = args.concurrency.into();
    spec.listen_backlog = args.listen_backlog;
    spec.port = args.port;
    let b = backend.backend();
    let server = b.start(spec).context("starting the server")?;
    let log = server.log().subscribe();
    eprintln!(
        "{} serving {}",
        b.library_version(),
        server.url("localhost")
    );
    eprintln!(
        "  listening on {} ({})",
        server
            .addrs()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" and "),
        match server.listen_queues() {
            Ok(q) => format!(
                "{}, listen backlog {}",
                server.concurrency(),
                q.first().map_or(0, |q| q.backlog)
            ),
            Err(_) => server.concurrency().to_string(),
        }
    );
    eprintln!("  certificate chain: {}", files.chain.display());
    eprintln!("  private key:       {}", files.key.display());
    eprintln!(
        "  trust anchor:      {} (SPKI sha256 {})",
        files.trust_anchor.display(),
        bundle.leaf_spki_sha256
    );
    eprintln!("  one JSON connection record per line on stdout; Ctrl-C stops");
    let printer = tokio::task::spawn_blocking(move || {
        for record in log {
            println!(
                "{}",
                serde_json::to_string(&record).expect("record serialises")
            );
        }
    });
    shutdown_signal().await;
    let stopped = tokio::task::spawn_blocking(move || server.stop())
        .await
        .context("stopping")?;
    let _ = printer.await;
    match stopped {
        Ok(records) => {
            eprintln!("stopped after {} connections", records.len());
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(1)
        }
    }
}
