#!/bin/bash
# Contender A, post_build phase: the seed's dockerfiles/push-to-ecr.sh, run from the source root.
#
# What the benchmark changed, and nothing else:
# - `$(aws ecr get-login ...)` (gone from AWS CLI v2, and no aws CLI here) is replaced by the same
#   GetAuthorizationToken call made with curl against AWS_ENDPOINT_URL (moto), its token decoded,
#   and `docker login -u AWS --password-stdin`;
# - ECR_REGISTRY, when set, replaces ${AWS_ACCOUNT_ID}.dkr.ecr.${AWS_REGION}.amazonaws.com
#   (the local registry stands in for ECR);
# - REPO_PREFIX (empty in the seed) puts the repositories under a namespace of the benchmark's own;
# - set -e, so that a failure is noticed.
set -e

get_image_tag() {
  if [ -f .git-commit-hash ]; then
    cat .git-commit-hash
  elif [ -n "${CODEBUILD_RESOLVED_SOURCE_VERSION}" ]; then
    echo "${CODEBUILD_RESOLVED_SOURCE_VERSION}"
  else
    echo latest
  fi
}

REGISTRY=${ECR_REGISTRY:-${AWS_ACCOUNT_ID}.dkr.ecr.${AWS_REGION}.amazonaws.com}

# was: $(aws ecr get-login --no-include-email --region ${AWS_REGION})
TOKEN=$(curl -sf -X POST "${AWS_ENDPOINT_URL}/" \
  -H 'X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken' \
  -H 'Content-Type: application/x-amz-json-1.1' \
  -H "Authorization: AWS4-HMAC-SHA256 Credential=${AWS_ACCESS_KEY_ID}/20240101/${AWS_REGION}/ecr/aws4_request, SignedHeaders=host, Signature=0" \
  -d '{}' | sed -n 's/.*"authorizationToken": *"\([^"]*\)".*/\1/p')
echo "${TOKEN}" | base64 -d | cut -d: -f2- | docker login -u AWS --password-stdin "${REGISTRY}"

TAG=$(get_image_tag)

for repo in app web log; do
  docker tag "${REPO_PREFIX}${repo}:latest" "${REGISTRY}/${REPO_PREFIX}${repo}:latest"
  docker tag "${REPO_PREFIX}${repo}:latest" "${REGISTRY}/${REPO_PREFIX}${repo}:${TAG}"
  docker push "${REGISTRY}/${REPO_PREFIX}${repo}:${TAG}"
  docker push "${REGISTRY}/${REPO_PREFIX}${repo}:latest"
done

cat > imagedefinitions.json <<JSON
[
  {"name": "app", "imageUri": "${REGISTRY}/${REPO_PREFIX}app:${TAG}"},
  {"name": "web", "imageUri": "${REGISTRY}/${REPO_PREFIX}web:${TAG}"},
  {"name": "log", "imageUri": "${REGISTRY}/${REPO_PREFIX}log:${TAG}"}
]
JSON
