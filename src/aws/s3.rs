//! S3: the bucket's versioning, and the upload of the source zip (one `PutObject`, or a
//! multipart upload above [`MULTIPART_THRESHOLD`]), each body with its `Content-MD5`.
//!
//! Five REST calls, made here on the pieces the other AWS clients already link: the shared
//! config's credentials and region, `aws-sigv4` to sign, the smithy HTTP connector (rustls,
//! proxies) to send. The aws-sdk-s3 crate would do the same, but it brings S3's whole endpoint
//! rule set, S3 Express sessions and its checksum machinery: 1.9 MB more (measured on the release
//! binary, 14.0 MB against 15.9 MB) in a binary that must stay under 15 MB. Requests follow the Amazon S3 API Reference (GetBucketVersioning,
//! PutObject, CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload).

use std::path::Path;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use base64::Engine;
use futures_util::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;
use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::AwsError;

/// Above this size the zip goes up in parts: the AWS CLI's default `multipart_threshold` and
/// `multipart_chunksize` (AWS CLI User Guide, "AWS CLI S3 configuration"), 8 MiB.
pub const MULTIPART_THRESHOLD: u64 = 8 * 1024 * 1024;
/// S3 takes at most 10,000 parts (Amazon S3 User Guide, "Amazon S3 multipart upload limits").
const MAX_PARTS: u64 = 10_000;
/// Parts in flight at once: memory stays under this many parts.
const PARTS_IN_FLIGHT: usize = 4;
/// A request is retried ([`crate::retry`]) when the connection fails, S3 answers 500 or 503
/// (`SlowDown`), or an attempt gets no answer within a minute, as the other AWS calls have.
const POLICY: crate::retry::Policy = crate::retry::Policy {
    attempt_timeout: Some(Duration::from_secs(60)),
};

/// Why one attempt of a request got no usable answer.
#[derive(Debug)]
enum Unsent {
    /// The request could not be signed (no credentials): not worth another attempt.
    Signing(AwsError),
    /// The connection failed.
    Transport(String),
    /// S3 answered 500 or 503.
    Busy(Answer),
}

impl std::fmt::Display for Unsent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unsent::Signing(e) => e.fmt(f),
            Unsent::Transport(cause) => f.write_str(cause),
            Unsent::Busy(answer) => write!(f, "HTTP {}", answer.status),
        }
    }
}

/// An S3 client for one region and endpoint.
pub struct Client {
    config: SdkConfig,
    connector: aws_smithy_http_client::Connector,
    region: String,
    /// `Some(base)` with an endpoint override: path-style addresses under it (a stand-in on
    /// `127.0.0.1` has no `<bucket>.127.0.0.1` host name).
    endpoint: Option<String>,
    /// Resolved once per run: behind a role, each resolution can be a call to STS or to the
    /// container's credentials endpoint.
    credentials: tokio::sync::OnceCell<aws_credential_types::Credentials>,
}

/// The S3 client of the shared config: its region and credentials, `AWS_ENDPOINT_URL_S3` or
/// `AWS_ENDPOINT_URL` when set.
pub fn client(config: &SdkConfig) -> Client {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| config.endpoint_url().map(str::to_owned))
        .map(|e| e.trim().trim_end_matches('/').to_owned());
    let settings = aws_smithy_runtime_api::client::http::HttpConnectorSettings::builder()
        .connect_timeout(Duration::from_secs(5))
        .build();
    let connector = aws_smithy_http_client::Connector::builder()
        .connector_settings(settings)
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build();
    Client {
        region: config
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into()),
        config: config.clone(),
        connector,
        endpoint,
        credentials: tokio::sync::OnceCell::new(),
    }
}

/// A bucket's versioning, as `GetBucketVersioning` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Versioning {
    Enabled,
    Suspended,
    /// Never turned on: S3 answers with no status at all.
    Off,
    /// The caller may not ask (`AccessDenied`): the seed's IAM user had only `s3:PutObject`.
    Unknown(String),
}

/// What S3 answered to the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub version_id: Option<String>,
    pub etag: Option<String>,
    /// 1 for a `PutObject`, else the number of parts.
    pub parts: u64,
}

/// One request: the call's name for messages, the method, the object and the query, the
/// headers beside the signature's.
struct Req<'a> {
    call: &'a str,
    method: &'a str,
    bucket: &'a str,
    key: &'a str,
    query: &'a str,
    headers: &'a [(&'a str, String)],
}

/// An answer of S3.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// `GetBucketVersioning` on `bucket`. `AccessDenied` is not an error but [`Versioning::Unknown`].
pub async fn versioning(client: &Client, bucket: &str) -> Result<Versioning, AwsError> {
    let call = format!("S3 GetBucketVersioning `{bucket}`");
    let answer = client
        .send(
            Req {
                call: &call,
                method: "GET",
                bucket,
                key: "",
                query: "versioning",
                headers: &[],
            },
            Vec::new(),
        )
        .await?;
    match answer.status {
        200 => Ok(match xml_value(&answer.body, "Status").as_deref() {
            Some("Enabled") => Versioning::Enabled,
            Some("Suspended") => Versioning::Suspended,
            _ => Versioning::Off,
        }),
        _ => match s3_error(&call, &answer) {
            AwsError::Call { cause, .. } if cause.starts_with("AccessDenied:") => Ok(
                Versioning::Unknown(cause.trim_start_matches("AccessDenied:").trim().to_owned()),
            ),
            e => Err(e),
        },
    }
}

/// Puts the file at `path` (`size` bytes) to `s3://bucket/key`.
pub async fn upload(
    client: &Client,
    bucket: &str,
    key: &str,
    path: &Path,
    size: u64,
) -> Result<Uploaded, AwsError> {
    if size <= MULTIPART_THRESHOLD {
        let call = format!("S3 PutObject `s3://{bucket}/{key}`");
        let data = read_part(path, 0, size)
            .await
            .map_err(|e| local(&call, e))?;
        let headers = [
            ("content-type", "application/zip".to_owned()),
            ("content-md5", md5(&data)),
        ];
        let answer = client
            .send(
                Req {
                    call: &call,
                    method: "PUT",
                    bucket,
                    key,
                    query: "",
                    headers: &headers,
                },
                data,
            )
            .await?;
        if answer.status != 200 {
            return Err(s3_error(&call, &answer));
        }
        return Ok(Uploaded {
            version_id: answer.header("x-amz-version-id"),
            etag: answer.header("etag"),
            parts: 1,
        });
    }
    let part_size = MULTIPART_THRESHOLD.max(size.div_ceil(MAX_PARTS));
    let call = format!("S3 CreateMultipartUpload `s3://{bucket}/{key}`");
    let headers = [("content-type", "application/zip".to_owned())];
    let answer = client
        .send(
            Req {
                call: &call,
                method: "POST",
                bucket,
                key,
                query: "uploads",
                headers: &headers,
            },
            Vec::new(),
        )
        .await?;
    if answer.status != 200 {
        return Err(s3_error(&call, &answer));
    }
    let upload_id = xml_value(&answer.body, "UploadId").ok_or_else(|| AwsError::Call {
        call: call.clone(),
        cause: "the answer has no UploadId".into(),
        hint: None,
    })?;
    let result = parts(client, bucket, key, &upload_id, path, size, part_size).await;
    if result.is_err() {
        // Best effort: parts left behind cost storage until a lifecycle rule removes them.
        let call = format!("S3 AbortMultipartUpload `s3://{bucket}/{key}`");
        let query = format!("uploadId={}", encode(&upload_id));
        let aborted = client
            .send(
                Req {
                    call: &call,
                    method: "DELETE",
                    bucket,
                    key,
                    query: &query,
                    headers: &[],
                },
                Vec::new(),
            )
            .await;
        if !matches!(aborted, Ok(Answer { status: 204, .. })) {
            tracing::warn!(
                "could not abort the multipart upload {upload_id}; its parts stay until a lifecycle rule removes them"
            );
        }
    }
    result
}

/// Uploads the parts, [`PARTS_IN_FLIGHT`] at a time, then completes the upload.
async fn parts(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    path: &Path,
    size: u64,
    part_size: u64,
) -> Result<Uploaded, AwsError> {
    let count = size.div_ceil(part_size);
    let etags: Vec<String> = futures_util::stream::iter(1..=count)
        .map(|number| async move {
            let call = format!("S3 UploadPart {number}/{count} of `s3://{bucket}/{key}`");
            let offset = (number - 1) * part_size;
            let data = read_part(path, offset, part_size.min(size - offset))
                .await
                .map_err(|e| local(&call, e))?;
            let query = format!("partNumber={number}&uploadId={}", encode(upload_id));
            let headers = [("content-md5", md5(&data))];
            let answer = client
                .send(
                    Req {
                        call: &call,
                        method: "PUT",
                        bucket,
                        key,
                        query: &query,
                        headers: &headers,
                    },
                    data,
                )
                .await?;
            match (answer.status, answer.header("etag")) {
                (200, Some(etag)) => Ok(etag),
                (200, None) => Err(AwsError::Call {
                    call,
                    cause: "the answer has no ETag".into(),
                    hint: None,
                }),
                _ => Err(s3_error(&call, &answer)),
            }
        })
        .buffered(PARTS_IN_FLIGHT)
        .try_collect()
        .await?;
    let call = format!("S3 CompleteMultipartUpload `s3://{bucket}/{key}`");
    let mut body =
        String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (i, etag) in etags.iter().enumerate() {
        body.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            i + 1,
            etag.replace('&', "&amp;").replace('"', "&quot;")
        ));
    }
    body.push_str("</CompleteMultipartUpload>");
    let query = format!("uploadId={}", encode(upload_id));
    let headers = [("content-type", "application/xml".to_owned())];
    let answer = client
        .send(
            Req {
                call: &call,
                method: "POST",
                bucket,
                key,
                query: &query,
                headers: &headers,
            },
            body.into_bytes(),
        )
        .await?;
    // S3 may answer 200 and still fail, with an <Error> document (Amazon S3 API Reference,
    // CompleteMultipartUpload: "a 200 OK response can contain valid or invalid XML").
    if answer.status != 200 || xml_value(&answer.body, "Code").is_some() {
        return Err(s3_error(&call, &answer));
    }
    Ok(Uploaded {
        version_id: answer.header("x-amz-version-id"),
        etag: xml_value(&answer.body, "ETag").or_else(|| answer.header("etag")),
        parts: count,
    })
}

impl Client {
    /// The URL of `bucket`/`key` with `query`: path-style under an endpoint override or for a
    /// bucket name with dots (which a virtual host's TLS certificate does not cover), else
    /// virtual-hosted (Amazon S3 User Guide, "Virtual hosting of buckets").
    fn url(&self, bucket: &str, key: &str, query: &str) -> String {
        let path = key.split('/').map(encode).collect::<Vec<_>>().join("/");
        let base = match &self.endpoint {
            Some(endpoint) => format!("{endpoint}/{bucket}/{path}"),
            None => {
                let suffix = if self.region.starts_with("cn-") {
                    "amazonaws.com.cn"
                } else {
                    "amazonaws.com"
                };
                if bucket.contains('.') {
                    format!("https://s3.{}.{suffix}/{bucket}/{path}", self.region)
                } else {
                    format!("https://{bucket}.s3.{}.{suffix}/{path}", self.region)
                }
            }
        };
        if query.is_empty() {
            base
        } else {
            format!("{base}?{query}")
        }
    }

    /// Sends one signed request, retrying a dropped connection or a 500/503 answer.
    async fn send(&self, req: Req<'_>, body: Vec<u8>) -> Result<Answer, AwsError> {
        let Req {
            call,
            method,
            bucket,
            key,
            query,
            headers,
        } = req;
        let url = self.url(bucket, key, query);
        let what = call.to_owned();
        let sent = crate::retry::run(
            POLICY,
            &what,
            || async {
                let request = self
                    .signed(call, method, &url, headers, &body)
                    .await
                    .map_err(Unsent::Signing)?;
                let response = self
                    .connector
                    .call(request)
                    .await
                    .map_err(|e| Unsent::Transport(crate::text::error_chain(&e)))?;
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                let http: http::Response<SdkBody> = response
                    .try_into_http1x()
                    .map_err(|e| Unsent::Transport(crate::text::error_chain(&e)))?;
                let body = http
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| Unsent::Transport(e.to_string()))?
                    .to_bytes()
                    .to_vec();
                let mut map = http::HeaderMap::new();
                for (name, value) in headers.iter() {
                    if let (Ok(name), Ok(value)) = (
                        http::HeaderName::from_bytes(name.as_bytes()),
                        http::HeaderValue::from_str(value),
                    ) {
                        map.append(name, value);
                    }
                }
                let answer = Answer {
                    status,
                    headers: map,
                    body,
                };
                match status {
                    500 | 503 => Err(Unsent::Busy(answer)),
                    _ => Ok(answer),
                }
            },
            |unsent| !matches!(unsent, Unsent::Signing(_)),
            &mut crate::retry::log_retry,
        )
        .await;
        match sent {
            Ok(answer) => Ok(answer),
            // S3's own answer, for the caller to read as any other.
            Err(crate::retry::GaveUp {
                last: crate::retry::Failure::Failed(Unsent::Busy(answer)),
                ..
            }) => Ok(answer),
            Err(crate::retry::GaveUp {
                last: crate::retry::Failure::Failed(Unsent::Signing(e)),
                ..
            }) => Err(e),
            Err(gave_up) => Err(AwsError::Call {
                call: call.to_owned(),
                cause: format!(
                    "{}{}",
                    gave_up.last,
                    crate::retry::attempts_note(gave_up.attempts)
                ),
                hint: Some(
                    "the S3 endpoint is unreachable: check the network and AWS_ENDPOINT_URL",
                ),
            }),
        }
    }

    /// The request, signed with SigV4 for service `s3`: the payload's SHA-256 in
    /// `x-amz-content-sha256`, the path encoded once and not normalized, as S3 wants (AWS
    /// General Reference, "Signature Version 4 signing process", S3 notes).
    async fn signed(
        &self,
        call: &str,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<HttpRequest, AwsError> {
        let failed = |cause: String, hint: Option<&'static str>| AwsError::Call {
            call: call.to_owned(),
            cause,
            hint,
        };
        let no_credentials = Some(
            "no AWS credentials found: in CI set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a role; locally AWS_PROFILE",
        );
        let credentials = self
            .credentials
            .get_or_try_init(|| async {
                let provider = self
                    .config
                    .credentials_provider()
                    .ok_or_else(|| failed("no credentials provider".into(), no_credentials))?;
                provider
                    .provide_credentials()
                    .await
                    .map_err(|e| failed(crate::text::error_chain(&e), no_credentials))
            })
            .await?;
        let identity = credentials.clone().into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| failed(e.to_string(), None))?
            .into();
        let mut request = http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut request = request
            .body(())
            .map_err(|e| failed(format!("bad request: {e}"), None))?;
        let signable_headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
            .collect();
        let signable = SignableRequest::new(
            method,
            url,
            signable_headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| failed(e.to_string(), None))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| failed(e.to_string(), None))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut request);
        let (parts, ()) = request.into_parts();
        let request = http::Request::from_parts(parts, SdkBody::from(body.to_vec()));
        HttpRequest::try_from(request).map_err(|e| failed(e.to_string(), None))
    }
}

/// A local failure (reading the zip) of a call.
fn local(call: &str, error: std::io::Error) -> AwsError {
    AwsError::Call {
        call: call.to_owned(),
        cause: format!("cannot read the zip: {error}"),
        hint: None,
    }
}

/// The base64 MD5 of a body, for `Content-MD5`.
fn md5(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(data))
}

async fn read_part(path: &Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut data = vec![0; len as usize];
    file.read_exact(&mut data).await?;
    Ok(data)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of the first `<name>` element of an XML answer, entities decoded.
fn xml_value(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&format!("</{name}>"))?;
    Some(
        text[start..end]
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// An S3 error answer with S3's own code and message, and a hint for the usual causes.
fn s3_error(call: &str, answer: &Answer) -> AwsError {
    let code = xml_value(&answer.body, "Code").unwrap_or_else(|| format!("HTTP {}", answer.status));
    let message = xml_value(&answer.body, "Message").unwrap_or_default();
    let hint = match code.as_str() {
        "NoSuchBucket" => Some("the bucket does not exist: check the name and the account"),
        "InvalidAccessKeyId" | "SignatureDoesNotMatch" => Some(
            "the credentials are wrong: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the job's role)",
        ),
        "ExpiredToken" | "TokenRefreshRequired" | "InvalidToken" => {
            Some("the credentials have expired: get new ones")
        }
        "AccessDenied" => Some(
            "the caller lacks a permission: `ecrship policy --source` prints the policy the uploader needs",
        ),
        "PermanentRedirect"
        | "AuthorizationHeaderMalformed"
        | "IllegalLocationConstraintException" => {
            Some("the bucket is in another region: set AWS_REGION to the bucket's region")
        }
        "BadDigest" | "InvalidDigest" => Some("the zip changed on its way to S3: run again"),
        _ => None,
    };
    AwsError::Call {
        call: call.to_owned(),
        cause: if message.is_empty() {
            code
        } else {
            format!("{code}: {}", message.trim())
        },
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_values_and_encoding() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access &amp; &quot;denied&quot;</Message></Error>";
        assert_eq!(xml_value(body, "Code").as_deref(), Some("AccessDenied"));
        assert_eq!(
            xml_value(body, "Message").as_deref(),
            Some("Access & \"denied\"")
        );
        assert_eq!(xml_value(body, "Status"), None);
        assert_eq!(encode("a b/ü~.zip"), "a%20b%2F%C3%BC~.zip");
    }

    fn client_for(region: &str, endpoint: Option<&str>) -> Client {
        let config = SdkConfig::builder()
            .region(aws_config::Region::new(region.to_owned()))
            .build();
        Client {
            endpoint: endpoint.map(str::to_owned),
            ..client(&config)
        }
    }

    #[test]
    fn urls_virtual_hosted_or_path_style() {
        let c = client_for("ap-northeast-1", None);
        assert_eq!(
            c.url("src-bucket", "app/src 1.zip", ""),
            "https://src-bucket.s3.ap-northeast-1.amazonaws.com/app/src%201.zip"
        );
        assert_eq!(
            c.url("src.bucket", "src.zip", "uploads"),
            "https://s3.ap-northeast-1.amazonaws.com/src.bucket/src.zip?uploads"
        );
        assert_eq!(
            client_for("cn-north-1", None).url("b-1", "", "versioning"),
            "https://b-1.s3.cn-north-1.amazonaws.com.cn/?versioning"
        );
        assert_eq!(
            client_for("us-east-1", Some("http://127.0.0.1:5000")).url("b-1", "k.zip", ""),
            "http://127.0.0.1:5000/b-1/k.zip"
        );
    }

    #[test]
    fn errors_carry_s3s_code_and_a_hint() {
        let answer = Answer {
            status: 403,
            headers: http::HeaderMap::new(),
            body: b"<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>".to_vec(),
        };
        let msg = s3_error("S3 PutObject `s3://b/k`", &answer).to_string();
        assert!(
            msg.starts_with(
                "S3 PutObject `s3://b/k` failed: InvalidAccessKeyId: The AWS Access Key Id"
            ) && msg.contains("(the credentials are wrong"),
            "{msg}"
        );
        let answer = Answer {
            status: 502,
            headers: http::HeaderMap::new(),
            body: Vec::new(),
        };
        assert!(s3_error("x", &answer).to_string().contains("HTTP 502"));
    }
}
