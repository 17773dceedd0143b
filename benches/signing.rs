//! Criterion bench for signing one delivery (Standard Webhooks and GitHub).

use criterion::{Criterion, criterion_group, criterion_main};
use hookd::model::SignatureScheme;
use hookd::signing::{Signer, generate_secret};

fn signing(c: &mut Criterion) {
    let secret = generate_secret();
    let body = vec![b'x'; 1024];
    let standard = Signer::new(SignatureScheme::Standard, &[secret.as_str()]).expect("secret");
    let github = Signer::new(SignatureScheme::Github, &[secret.as_str()]).expect("secret");
    c.bench_function("sign standard 1KiB", |b| {
        b.iter(|| standard.sign("evt_1", 1_700_000_000, &body))
    });
    c.bench_function("sign github 1KiB", |b| {
        b.iter(|| github.sign("evt_1", 1_700_000_000, &body))
    });
}

criterion_group!(benches, signing);
criterion_main!(benches);
