#!/bin/bash
# Contender: `docker buildx bake --push`, as a buildspec would run it today: log in to ECR, build
# and push the three images of docker-bake.hcl (the project's) with buildx's docker driver on the
# host's daemon, then write imagedefinitions.json (echo and printf). Run from the source root.
#
# As for the seed's scripts: GetAuthorizationToken is called with curl against AWS_ENDPOINT_URL
# (moto) in place of `aws ecr get-login-password`, ECR_REGISTRY stands in for ECR's host, and
# REPO_PREFIX puts the repositories under the benchmark's namespace. docker-buildx comes from
# DOCKER_CONFIG's cli-plugins folder.
#
# For bench/run's other sections: BAKE_FILE names another bake file (the second commit's, with
# inline cache and cache-from; the mounts project's), BAKE_IMAGES the images imagedefinitions.json
# names (default: app web log).
set -euo pipefail

REGISTRY=${ECR_REGISTRY:-${AWS_ACCOUNT_ID}.dkr.ecr.${AWS_REGION}.amazonaws.com}
TAG=$(head -n 1 .git-commit-hash 2>/dev/null || true)
TAG=${TAG:-${CODEBUILD_RESOLVED_SOURCE_VERSION:-latest}}

# was: aws ecr get-login-password | docker login --username AWS --password-stdin "$REGISTRY"
curl -sf -X POST "${AWS_ENDPOINT_URL}/" \
  -H 'X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken' \
  -H 'Content-Type: application/x-amz-json-1.1' \
  -H "Authorization: AWS4-HMAC-SHA256 Credential=${AWS_ACCESS_KEY_ID}/20240101/${AWS_REGION}/ecr/aws4_request, SignedHeaders=host, Signature=0" \
  -d '{}' | sed -n 's/.*"authorizationToken": *"\([^"]*\)".*/\1/p' |
  base64 -d | cut -d: -f2- | docker login -u AWS --password-stdin "$REGISTRY"

REGISTRY=$REGISTRY PREFIX=${REPO_PREFIX:-} TAG=$TAG BUILDKIT_PROGRESS=plain \
  docker buildx bake ${BAKE_FILE:+--file "$BAKE_FILE"} --push

{
  echo '['
  sep=
  for name in ${BAKE_IMAGES:-app web log}; do
    printf '%s  {"name": "%s", "imageUri": "%s"}' "$sep" "$name" "${REGISTRY}/${REPO_PREFIX:-}${name}:${TAG}"
    sep=$',\n'
  done
  printf '\n]\n'
} >imagedefinitions.json
