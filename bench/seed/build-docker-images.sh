#!/bin/bash
# Contender A, build phase: the seed's dockerfiles/build-docker-images.sh, one `docker build`
# after another, run from the source root as CodeBuild runs it.
#
# What the benchmark changed, and nothing else:
# - REPO_PREFIX (empty in the seed) puts the images under a namespace of the benchmark's own;
# - DOCKER_BUILDKIT=0: the seed's `docker build` runs on the classic builder, as it did on
#   CodeBuild's docker:17.09 image (the client config bench/run gives every contender has the
#   buildx plugin, for contender K, which would otherwise make `docker build` use BuildKit);
# - set -e, so that a failure is noticed (the seed relied on the last command's status).
set -e
export DOCKER_BUILDKIT=0

docker build -t "${REPO_PREFIX}app:latest" -f dockerfiles/app/Dockerfile --build-arg MIX_ENV --build-arg SECRET_KEY_BASE ./
docker build -t "${REPO_PREFIX}web:latest" ./dockerfiles/web
docker build -t "${REPO_PREFIX}log:latest" ./dockerfiles/log
