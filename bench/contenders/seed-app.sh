#!/bin/bash
# Contender S of bench/run's `mounts` section: the seed's two scripts (bench/seed/) for a project
# of one image, `app`, run from the source root: build-docker-images.sh's `docker build` of app on
# the classic builder (DOCKER_BUILDKIT=0) with the Dockerfile DOCKERFILE, then push-to-ecr.sh's
# login and its loop body for app alone (`docker tag` x2, `docker push :<tag>`, `docker push
# :latest`), and imagedefinitions.json. Its changes to the seed are bench/seed's: GetAuthorizationToken
# with curl against AWS_ENDPOINT_URL (moto), ECR_REGISTRY for ECR's host, REPO_PREFIX, set -e.
set -e
export DOCKER_BUILDKIT=0

docker build -t "${REPO_PREFIX}app:latest" -f "${DOCKERFILE:-Dockerfile}" ./

REGISTRY=${ECR_REGISTRY:-${AWS_ACCOUNT_ID}.dkr.ecr.${AWS_REGION}.amazonaws.com}
TOKEN=$(curl -sf -X POST "${AWS_ENDPOINT_URL}/" \
  -H 'X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken' \
  -H 'Content-Type: application/x-amz-json-1.1' \
  -H "Authorization: AWS4-HMAC-SHA256 Credential=${AWS_ACCESS_KEY_ID}/20240101/${AWS_REGION}/ecr/aws4_request, SignedHeaders=host, Signature=0" \
  -d '{}' | sed -n 's/.*"authorizationToken": *"\([^"]*\)".*/\1/p')
echo "${TOKEN}" | base64 -d | cut -d: -f2- | docker login -u AWS --password-stdin "${REGISTRY}"

if [ -f .git-commit-hash ]; then TAG=$(cat .git-commit-hash); else TAG=${CODEBUILD_RESOLVED_SOURCE_VERSION:-latest}; fi

docker tag "${REPO_PREFIX}app:latest" "${REGISTRY}/${REPO_PREFIX}app:latest"
docker tag "${REPO_PREFIX}app:latest" "${REGISTRY}/${REPO_PREFIX}app:${TAG}"
docker push "${REGISTRY}/${REPO_PREFIX}app:${TAG}"
docker push "${REGISTRY}/${REPO_PREFIX}app:latest"

cat > imagedefinitions.json <<JSON
[
  {"name": "app", "imageUri": "${REGISTRY}/${REPO_PREFIX}app:${TAG}"}
]
JSON
