//! S3: the bucket's versioning, and the upload of the source zip (one `PutObject`, or a
//! multipart upload above [`MULTIPART_THRESHOLD`]), each body with its `Content-MD5`.

use std::path::Path;

use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use futures_util::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{AwsError, call_error};

/// Above this size the zip goes up in parts: the AWS CLI's default `multipart_threshold` and
/// `multipart_chunksize` (AWS CLI User Guide, "AWS CLI S3 configuration"), 8 MiB.
pub const MULTIPART_THRESHOLD: u64 = 8 * 1024 * 1024;
/// S3 takes at most 10,000 parts (Amazon S3 User Guide, "Amazon S3 multipart upload limits").
const MAX_PARTS: u64 = 10_000;
/// Parts in flight at once: memory stays under this many parts.
const PARTS_IN_FLIGHT: usize = 4;

/// The S3 client: path-style addresses when an endpoint override is set (a stand-in on
/// `127.0.0.1` has no `<bucket>.127.0.0.1` host name), and checksums only where S3 requires them,
/// since every body here carries its `Content-MD5`.
pub fn client(config: &SdkConfig) -> Client {
    let overridden = config.endpoint_url().is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some_and(|v| !v.is_empty());
    let conf = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(overridden)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(conf)
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

/// `GetBucketVersioning` on `bucket`. `AccessDenied` is not an error but [`Versioning::Unknown`].
pub async fn versioning(client: &Client, bucket: &str) -> Result<Versioning, AwsError> {
    let call = format!("S3 GetBucketVersioning `{bucket}`");
    match client.get_bucket_versioning().bucket(bucket).send().await {
        Ok(out) => Ok(match out.status() {
            Some(BucketVersioningStatus::Enabled) => Versioning::Enabled,
            Some(BucketVersioningStatus::Suspended) => Versioning::Suspended,
            _ => Versioning::Off,
        }),
        Err(e) if e.code() == Some("AccessDenied") => Ok(Versioning::Unknown(
            e.message().unwrap_or("Access Denied").to_owned(),
        )),
        Err(e) => Err(s3_error(&call, &e)),
    }
}

/// What S3 answered to the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub version_id: Option<String>,
    pub etag: Option<String>,
    /// 1 for a `PutObject`, else the number of parts.
    pub parts: u64,
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
        return put(client, bucket, key, path).await;
    }
    let part_size = MULTIPART_THRESHOLD.max(size.div_ceil(MAX_PARTS));
    let call = format!("S3 CreateMultipartUpload `s3://{bucket}/{key}`");
    let created = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type("application/zip")
        .send()
        .await
        .map_err(|e| s3_error(&call, &e))?;
    let upload_id = created.upload_id().unwrap_or_default().to_owned();
    let result = parts(client, bucket, key, &upload_id, path, size, part_size).await;
    if result.is_err() {
        // Best effort: parts left behind cost storage until a lifecycle rule removes them.
        if let Err(e) = client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await
        {
            tracing::warn!(
                "could not abort the multipart upload {upload_id}: {}; its parts stay until a lifecycle rule removes them",
                crate::error::error_chain(&e)
            );
        }
    }
    result
}

/// One `PutObject` with the file streamed from disk.
async fn put(client: &Client, bucket: &str, key: &str, path: &Path) -> Result<Uploaded, AwsError> {
    let call = format!("S3 PutObject `s3://{bucket}/{key}`");
    let local = |cause: String| AwsError::Call {
        call: call.clone(),
        cause,
        hint: None,
    };
    let md5 = file_md5(path)
        .await
        .map_err(|e| local(format!("cannot read the zip: {e}")))?;
    let body = ByteStream::from_path(path)
        .await
        .map_err(|e| local(format!("cannot read the zip: {e}")))?;
    let out = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/zip")
        .content_md5(md5)
        .body(body)
        .send()
        .await
        .map_err(|e| s3_error(&call, &e))?;
    Ok(Uploaded {
        version_id: out.version_id().map(str::to_owned),
        etag: out.e_tag().map(str::to_owned),
        parts: 1,
    })
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
    let completed: Vec<CompletedPart> = futures_util::stream::iter(1..=count)
        .map(|number| async move {
            let call = format!("S3 UploadPart {number}/{count} of `s3://{bucket}/{key}`");
            let offset = (number - 1) * part_size;
            let len = part_size.min(size - offset);
            let data = read_part(path, offset, len)
                .await
                .map_err(|e| AwsError::Call {
                    call: call.clone(),
                    cause: format!("cannot read the zip: {e}"),
                    hint: None,
                })?;
            let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&data));
            let out = client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number as i32)
                .content_md5(md5)
                .body(ByteStream::from(data))
                .send()
                .await
                .map_err(|e| s3_error(&call, &e))?;
            Ok::<_, AwsError>(
                CompletedPart::builder()
                    .part_number(number as i32)
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .build(),
            )
        })
        .buffered(PARTS_IN_FLIGHT)
        .try_collect()
        .await?;
    let call = format!("S3 CompleteMultipartUpload `s3://{bucket}/{key}`");
    let out = client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .map_err(|e| s3_error(&call, &e))?;
    Ok(Uploaded {
        version_id: out.version_id().map(str::to_owned),
        etag: out.e_tag().map(str::to_owned),
        parts: count,
    })
}

/// The base64 MD5 of a file, read in 1 MiB pieces.
async fn file_md5(path: &Path) -> std::io::Result<String> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Md5::new();
    let mut buf = vec![0; 1024 * 1024];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(hasher.finalize()))
}

async fn read_part(path: &Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut data = vec![0; len as usize];
    file.read_exact(&mut data).await?;
    Ok(data)
}

/// An S3 error with S3's own code and a hint for the usual causes.
fn s3_error<E>(call: &str, error: &SdkError<E>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let hint = match error.code() {
        Some("NoSuchBucket") => Some("the bucket does not exist: check the name and the account"),
        Some("InvalidAccessKeyId") | Some("SignatureDoesNotMatch") => Some(
            "the credentials are wrong: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the job's role)",
        ),
        Some("ExpiredToken") | Some("TokenRefreshRequired") => {
            Some("the credentials have expired: get new ones")
        }
        Some("AccessDenied") => Some(
            "the caller lacks a permission: `ecrship policy --source` prints the policy the uploader needs",
        ),
        Some("PermanentRedirect") | Some("AuthorizationHeaderMalformed") => {
            Some("the bucket is in another region: set AWS_REGION to the bucket's region")
        }
        Some("BadDigest") | Some("InvalidDigest") => {
            Some("the zip changed on its way to S3: run again")
        }
        _ => None,
    };
    match (error.code(), hint) {
        (Some(code), Some(hint)) => AwsError::Call {
            call: call.to_owned(),
            cause: format!("{code}: {}", error.message().unwrap_or("no message").trim()),
            hint: Some(hint),
        },
        _ => call_error(call, error),
    }
}
