//! `matrix.html` of a real small run, opened in headless Chromium through WebDriver (issue #18):
//! the findings name the run's numbers, a click on a cell draws each trial's timeline with one
//! bar per connection record, and a screenshot is kept in the run folder.
//!
//! The browser is started exactly as a trial starts it (`browser::driver_command` and
//! `browser::capabilities`: headless, off the network), only pointed at a `file://` page.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use backends::BackendName;
use certs::CertBundle;
use fantoccini::{Client, ClientBuilder, Locator};
use harness::browser::{self, BrowserBinaries, BrowserKind, SessionPlan};
use harness::process::{DriverProcess, free_port};
use harness::progress::Progress;
use harness::runner::{RunPlan, run};
use harness::scenario::Scenario;
use model::TlsVersion;
use results::{CellStatus, Environment, RunResults, SCHEMA_VERSION};

mod common;
use common::ONE_AT_A_TIME;

fn shipped(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).expect("shipped scenario parses")
}

/// A run folder that outlives the test (the screenshot is an artefact), emptied first.
fn kept_folder(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Opens `page` (a `file://` URL) in headless Chromium started as a trial starts it, runs
/// `look` on the session, and stops the browser whatever `look` did.
async fn in_chromium<F, Fut>(page: &str, look: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = Client> + Send + 'static,
{
    let bins =
        BrowserBinaries::find(BrowserKind::Chromium, None, None).unwrap_or_else(|e| panic!("{e}"));
    let profile = tempfile::tempdir().unwrap();
    let dir = profile.path();
    let scenario = shipped("report-close");
    let f = &scenario.file;
    let bundle = CertBundle::generate(f.cert).unwrap();
    let files = bundle.write_to(&dir.join("certs")).unwrap();
    let plan = SessionPlan {
        kind: BrowserKind::Chromium,
        binaries: &bins,
        trust: f.trust,
        cert: &bundle,
        cert_files: &files,
        knobs: &f.knobs,
        dir,
        steering: None,
        tls_pin: None,
        any_page: false,
        profile_template: None,
    };
    let (home, profile_dir) = browser::home_and_profile(dir);
    for d in [&home, &profile_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    let tmp = tempfile::Builder::new().prefix("hm-").tempdir().unwrap();
    let port = free_port().unwrap();
    let command = browser::driver_command(&plan, port, tmp.path());
    let mut driver = DriverProcess::spawn(
        command.name,
        &bins.driver,
        &command.args,
        &command.env,
        &command.log,
        port,
        vec![dir.to_owned(), tmp.path().to_owned()],
    )
    .await
    .unwrap_or_else(|e| panic!("chromedriver: {e}"));
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(browser::capabilities(&plan))
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    client.set_window_size(1400, 1600).await.unwrap();
    client.goto(page).await.unwrap();
    // A panic inside `look` must not leave the browser running: run it as a task, stop the
    // driver's process group either way, then report.
    let looked = tokio::spawn(look(client)).await;
    match looked {
        Ok(client) => browser::end_session(Some(client), &mut driver).await,
        Err(e) => {
            browser::end_session(None, &mut driver).await;
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

fn file_url(path: &Path) -> String {
    url::Url::from_file_path(path).unwrap().to_string()
}

#[test]
fn the_report_of_a_real_run_shows_findings_and_one_bar_per_connection() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bins =
        BrowserBinaries::find(BrowserKind::Chromium, None, None).unwrap_or_else(|e| panic!("{e}"));
    let out = kept_folder("report-page-run");
    let plan = RunPlan {
        scenarios: vec![shipped("report-close")],
        backends: vec![harness::target::TargetName::Builtin(BackendName::Rustls)],
        browsers: vec![BrowserKind::Chromium],
        tls: vec![TlsVersion::Tls13],
        repeat: Some(1),
        jobs: 1,
        out: out.clone(),
        binaries: vec![(BrowserKind::Chromium.into(), Ok(bins))],
        quiet: Duration::from_millis(500),
        keep_profiles: false,
        server_port: None,
        only: None,
        relay: harness::runner::RelayMode::Off,
        external: Vec::new(),
        profile_templates: None,
    };
    let empty = RunResults {
        schema_version: SCHEMA_VERSION,
        environment: Environment::default(),
        cells: Vec::new(),
        cells_requested: 0,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let results = rt.block_on(run(plan, empty, &Progress::new()));
    results::write_all(&results, &out).unwrap();
    // What the page must show, from the file it was rendered from.
    let results = RunResults::read(&out).unwrap();
    let cell = &results.cells[0];
    assert_eq!(cell.status, CellStatus::Measured, "{:?}", cell.status);
    let trial = &cell.trials[0];
    let records: Vec<&model::ConnectionRecord> = trial
        .steps_and_teardown()
        .flat_map(|s| &s.connections)
        .collect();
    let mut kinds: Vec<String> = records
        .iter()
        .map(|r| {
            serde_json::to_value(&r.outcome).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    kinds.sort();
    let proceed = trial.steps[1]
        .retries
        .expect("the proceed step showed the page");
    let expected_proceed = if proceed == 1 {
        "1 retry before the page on proceed".to_owned()
    } else {
        format!("{proceed} retries before the page on proceed")
    };
    let visit = trial.steps[0].failed_handshakes;
    let expected_visit = if visit == 1 {
        "1 failed handshake on the visit that shows the warning".to_owned()
    } else {
        format!("{visit} failed handshakes on the visit that shows the warning")
    };
    let findings = results::findings(&results);
    let screenshot = out.join("matrix.png");
    let saved = screenshot.clone();
    let steps = trial.steps_and_teardown().count();

    rt.block_on(in_chromium(
        &file_url(&out.join("matrix.html")),
        |client| async move {
            let items = client
                .find_all(Locator::Css("#findings li.finding"))
                .await
                .unwrap();
            let mut texts = Vec::new();
            for li in &items {
                texts.push(li.text().await.unwrap());
            }
            assert_eq!(texts.len(), findings.len(), "{texts:?}");
            for (shown, f) in texts.iter().zip(&findings) {
                assert!(shown.starts_with(&f.text), "{shown:?} vs {:?}", f.text);
            }
            assert!(
                texts[0].contains(&expected_proceed) && texts[0].contains(&expected_visit),
                "the finding names the trial's numbers ({expected_proceed}; {expected_visit}): {}",
                texts[0]
            );

            client
                .find(Locator::Css("td#c0"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            let timeline = client
                .wait()
                .at_most(Duration::from_secs(10))
                .for_element(Locator::Css(
                    "tr.detail .trial[data-trial=\"1\"] svg.timeline",
                ))
                .await
                .expect("clicking the cell draws the trial's timeline");
            let bars = timeline.find_all(Locator::Css("rect.bar")).await.unwrap();
            let mut shown_kinds = Vec::new();
            for b in &bars {
                let class = b.attr("class").await.unwrap().unwrap_or_default();
                let kind = b.attr("data-outcome").await.unwrap().unwrap_or_default();
                assert!(
                    class.split(' ').any(|c| c == format!("o-{kind}")),
                    "a bar's class carries its outcome: {class}"
                );
                shown_kinds.push(kind);
            }
            shown_kinds.sort();
            assert_eq!(
                shown_kinds, kinds,
                "one bar per connection record of the trial, with its outcome"
            );
            let bands = timeline.find_all(Locator::Css("rect.band")).await.unwrap();
            assert_eq!(bands.len(), steps, "one band per step and the teardown");
            client
                .execute(
                    "document.querySelector('tr.detail').scrollIntoView()",
                    vec![],
                )
                .await
                .unwrap();
            let png = client.screenshot().await.unwrap();
            std::fs::write(&saved, png).unwrap();
            client
        },
    ));
    assert!(screenshot.is_file());
    println!("screenshot: {}", screenshot.display());
}

/// The README's picture: `HM_RUN=<run folder> HM_CELL='<scenario> / <backend> / <browser> / TLS
/// <v>' cargo test -p harness --test report_page -- --ignored readme_picture` writes
/// `docs/matrix-html.png` from that run's `matrix.html` with the cell opened.
#[test]
#[ignore = "writes the README's picture from a run named in HM_RUN"]
fn readme_picture() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let run = PathBuf::from(std::env::var("HM_RUN").expect("HM_RUN: a run folder"));
    let wanted = std::env::var("HM_CELL").expect("HM_CELL: a cell, as matrix.md names it");
    let results = RunResults::read(&run).unwrap();
    let index = results
        .cells
        .iter()
        .position(|c| c.key.to_string() == wanted)
        .unwrap_or_else(|| panic!("no cell {wanted} in {}", run.display()));
    let picture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/matrix-html.png");
    let page = format!("{}#c{index}", file_url(&run.join("matrix.html")));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(in_chromium(&page, |client| async move {
        let detail = client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("tr.detail"))
            .await
            .unwrap();
        let png = detail.screenshot().await.unwrap();
        std::fs::create_dir_all(picture.parent().unwrap()).unwrap();
        std::fs::write(&picture, png).unwrap();
        client
    }));
}
