#!/usr/bin/env bash
# The deploy checks must catch real mistakes, not just pass: each case
# copies the deployment kit, breaks one thing the way a person could, and
# expects validate.mjs to fail with the message naming it (so a case cannot
# pass by failing for another reason). A case whose edit no longer applies
# (the file changed) fails too, so the list stays honest.
#
# usage: tests/deploy/mutations.sh [BIN...]   (BINs: built workers, for the
#        Dockerfile's library check)
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
if ! out=$("$top/scripts/deploy-tools.sh" 2>&1); then
    echo "SKIP: the deployment validation tools cannot be installed here:"
    echo "$out" | tail -n 3
    exit 77
fi
bins=("$@")
work=$(mktemp -d "${TMPDIR:-/tmp}/osy-deploy-mut-XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

# A pristine copy of what the checks read.
seed() {
    rm -rf "$work/top"
    mkdir -p "$work/top/include/optsync" "$work/top/docs"
    cp -r "$top/deploy" "$top/workers" "$top/common" "$work/top/"
    rm -rf "$work/top/deploy/validate/node_modules"
    cp "$top/docker-compose.yml" "$top/.env.example" "$top/.dockerignore" \
        "$top/CMakeLists.txt" "$work/top/"
    cp "$top/include/optsync/config_keys.h" "$work/top/include/optsync/"
    cp "$top/docs/operations.md" "$work/top/docs/"
}

# case NAME FILE SED_EXPR EXPECTED_MESSAGE COMMAND [ARG...]
case_() {
    local name=$1 file=$2 expr=$3 want=$4
    shift 4
    seed
    local f="$work/top/$file"
    cp "$f" "$work/orig"
    sed -i -e "$expr" "$f"
    if cmp -s "$f" "$work/orig"; then
        echo "FAIL $name: the edit '$expr' no longer applies to $file"
        failed=$((failed + 1))
        return
    fi
    local got rc
    got=$(OSY_DEPLOY_TOP="$work/top" node "$top/deploy/validate/validate.mjs" "$@" 2>&1)
    rc=$?
    if [ $rc -eq 1 ] && grep -qF -- "$want" <<<"$got"; then
        echo "ok   $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name: expected exit 1 with \"$want\", got exit $rc:"
        sed 's/^/       /' <<<"$got" | tail -n 8
        failed=$((failed + 1))
    fi
}

k=deploy/k8s
case_ service-links $k/base/rules.yaml '/enableServiceLinks: false/d' \
    "enableServiceLinks must be false" policy dev
case_ unknown-key $k/base/kustomization.yaml 's/^  - OPTSYNC_LOG_LEVEL=info$/&\n  - OPTSYNC_LOG_LEVL=debug/' \
    "OPTSYNC_LOG_LEVL is not a configuration key" policy dev
case_ short-grace $k/base/sf-writer.yaml 's/terminationGracePeriodSeconds: 40/terminationGracePeriodSeconds: 20/' \
    "does not cover" policy dev
case_ readiness-path $k/base/ac-ingest.yaml 's#path: /readyz#path: /ready#' \
    "readinessProbe must GET /readyz" policy prod
case_ spool-not-persistent $k/base/ac-ingest.yaml 's#mountPath: /var/lib/optsync/ac-ingest#mountPath: /var/lib/optsync/spool#' \
    "per-replica persistent volume" policy dev
case_ root-filesystem $k/base/rules.yaml 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/' \
    "readOnlyRootFilesystem must be true" policy prod
case_ secret-unreadable $k/base/sf-writer.yaml '/fsGroup: 10001/d' \
    "unreadable by uid 10001" policy prod
case_ keda-group $k/overlays/prod/keda.yaml 's/consumerGroup: optsync-sf-writer/consumerGroup: optsync-sfwriter/' \
    "consumerGroup optsync-sfwriter differs" policy prod
case_ keda-bootstrap $k/overlays/prod/keda.yaml '0,/bootstrapServers: .*/s//bootstrapServers: kafka:9092/' \
    "differs from OPTSYNC_KAFKA_BOOTSTRAP" policy prod
case_ ingress-port $k/base/ingress.yaml 's/name: webhook/name: web/' \
    "has no port web" policy dev
case_ real-secret $k/overlays/prod/secret.yaml '0,/"api_token": "REPLACE_ME"/s//"api_token": "3f9a0c"/' \
    "looks real" policy prod
case_ sandbox-in-prod $k/overlays/prod/workers.yaml 's/^      topologySpreadConstraints:$/      containers:\n      - name: ac-ingest\n        args: ["optsync-sandbox"]\n&/' \
    "prod must not run the sandbox" policy prod
case_ schema-typo $k/base/ac-ingest.yaml 's/readinessProbe:/readinesProbe:/' \
    "unknown field" schema dev
case_ schema-type $k/base/rules.yaml 's/containerPort: 9090/containerPort: "9090"/' \
    "must be integer" schema prod
case_ compose-key docker-compose.yml 's/OPTSYNC_REDIS_PORT: \$/OPTSYNC_REDIS_PROT: $/' \
    "OPTSYNC_REDIS_PROT is not a configuration key" compose
case_ compose-grace docker-compose.yml 's/stop_grace_period: 40s/stop_grace_period: 10s/' \
    "stop_grace_period" compose
case_ compose-healthcheck docker-compose.yml 's#http://127.0.0.1:9090/readyz#http://127.0.0.1:9090/healthz#' \
    "healthcheck must GET /readyz" compose
case_ env-undocumented .env.example '/^OSY_KAFKA_PARTITIONS=/d' \
    "does not document OSY_KAFKA_PARTITIONS" compose
case_ docker-root deploy/docker/Dockerfile 's/^USER 10001:10001$/USER root/' \
    "numeric non-root" dockerfile
case_ docker-unpinned deploy/docker/Dockerfile 's/^ARG DEBIAN_IMAGE=.*/ARG DEBIAN_IMAGE=debian:bookworm-slim/' \
    "pinned to a point release" dockerfile
# shellcheck disable=SC2016 # ${DEBIAN_IMAGE} is the Dockerfile's, not ours
case_ docker-single-stage deploy/docker/Dockerfile 's/^FROM \${DEBIAN_IMAGE} AS runtime$/# &/' \
    "multi-stage" dockerfile
case_ docker-secret deploy/docker/Dockerfile 's/^USER 10001:10001$/ENV OPTSYNC_REDIS_PASSWORD=hunter2\n&/' \
    "looks like a secret" dockerfile
if [ ${#bins[@]} -gt 0 ]; then
    case_ docker-missing-lib deploy/docker/Dockerfile '/^        librdkafka1 \\$/d' \
        "from librdkafka1, which the runtime stage does not install" dockerfile "${bins[@]}"
fi
case_ metric-unknown deploy/prometheus/prometheusrule.yaml 's/(optsync_writer_pending)/(optsync_writer_pendings)/' \
    "optsync_writer_pendings is not exported" metrics
case_ docs-runbook docs/operations.md 's/^### OptsyncSpoolNotDraining$/### Spool not draining/' \
    "runbook section #optsyncspoolnotdraining missing" docs
case_ docs-sizing $k/base/rules.yaml '0,/memory: 256Mi/s//memory: 300Mi/' \
    "sizing row of rules" docs

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
