//! HTTPS to a real TLS server (stunnel in front of Garage): the certificate is verified, `--cacert`
//! adds a trust anchor, `--insecure` skips verification.

use s3backer_e2e::*;

fn params(proxy: &TlsProxy, bucket: &str, extra: &[String]) -> Vec<String> {
    let mut p = vec![
        format!("baseURL={}", proxy.endpoint),
        format!("accessId={}", garage::KEY_ID),
        format!("accessKey={}", garage::SECRET),
        format!("bucket={bucket}"),
        "size=1m".into(),
        "blockSize=64k".into(),
    ];
    p.extend(extra.iter().cloned());
    p
}

#[test]
fn https_with_cacert_insecure_and_neither() {
    let g = Garage::shared();
    let proxy = TlsProxy::start(&g.endpoint);
    let bucket = g.new_bucket("tls");

    let err = Nbdkit::start(&params(&proxy, &bucket, &[]))
        .err()
        .expect("unknown issuer refused");
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    let nbd = Nbdkit::start(&params(
        &proxy,
        &bucket,
        &[format!("cacert={}", proxy.cert.display())],
    ))
    .expect("trusted with --cacert");
    qemu_io(&nbd.uri(), &["write -P 4 0 128k", "read -P 4 0 128k"]);
    drop(nbd);
    assert_eq!(g.data_keys(&bucket, ""), ["00000000", "00000001"]);

    let nbd =
        Nbdkit::start(&params(&proxy, &bucket, &["insecure=true".into()])).expect("--insecure");
    qemu_io(&nbd.uri(), &["read -P 4 0 128k"]);
}
