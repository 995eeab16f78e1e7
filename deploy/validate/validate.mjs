#!/usr/bin/env node
// validate.mjs - offline checks of optsync's deployment kit: renders the
// kustomize overlays, validates every object against the Kubernetes (and
// KEDA, Prometheus Operator) schemas with unknown fields refused, and checks
// what schemas cannot: optsync's own rules for its pods, references between
// objects, the compose file, the alerts, the dashboard and the docs.
//
// usage: node deploy/validate/validate.mjs COMMAND [ARG]
//   render OVERLAY   every kubectl found renders OVERLAY to the same objects
//   schema OVERLAY   every rendered object passes its schema, strictly
//   policy OVERLAY   optsync's rules for pods, configuration, references
//   compose          docker-compose.yml and .env.example
//   env CONFIG_BIN   every worker environment passes `optsync-config --check`
//   alerts           the PrometheusRule: promtool check + promtool unit tests
//   metrics          dashboard and alerts use only metrics the workers export
//   docs             docs/operations.md matches the manifests
//   dockerfile [BIN...]  Dockerfile lint; BINs: runtime packages cover ldd
//   tenants CHECK_BIN    the shipped tenants files load (tests/deploy/check_tenants)
//   selftest         the checkers refuse known-bad input
//
// Tools come from scripts/deploy-tools.sh (OSY_DEPLOY_TOOLS, default
// build/deploy-tools). Exit codes: 0 passed, 1 failed, 77 a tool is missing
// (CTest reports that as skipped).
import { execFile, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

// OSY_DEPLOY_TOP lets tests/deploy run the checks on a mutated copy.
const HOME_TOP = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const TOP = process.env.OSY_DEPLOY_TOP || HOME_TOP;
const TOOLS = process.env.OSY_DEPLOY_TOOLS || path.join(HOME_TOP, "build", "deploy-tools");
const WORKERS = ["ac-ingest", "sf-ingest", "rules", "sf-writer", "ac-writer"];
const SKIP = 77;

// ---- small helpers -----------------------------------------------------------

const problems = [];
function fail(msg) {
  problems.push(msg);
}
function finish(what) {
  if (problems.length) {
    for (const p of problems) console.error(`FAIL: ${p}`);
    console.error(`${what}: ${problems.length} problem(s)`);
    process.exit(1);
  }
  console.log(`${what}: ok`);
  process.exit(0);
}
function skip(msg) {
  console.log(`SKIP: ${msg} (run scripts/deploy-tools.sh)`);
  process.exit(SKIP);
}
function read(rel) {
  return fs.readFileSync(path.join(TOP, rel), "utf8");
}
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  return r;
}
function isExec(p) {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}
function which(name) {
  for (const d of (process.env.PATH || "").split(":")) {
    if (d && isExec(path.join(d, name))) return path.join(d, name);
  }
  return null;
}

// The npm packages live in the tools folder, not next to this script.
let requireTools = null;
function tool(mod) {
  if (!requireTools) {
    const pkg = path.join(TOOLS, "node", "package.json");
    if (!fs.existsSync(path.join(TOOLS, "node", "node_modules"))) skip(`npm packages missing in ${path.dirname(pkg)}`);
    requireTools = createRequire(pkg);
  }
  try {
    return requireTools(mod);
  } catch (e) {
    skip(`cannot load ${mod}: ${e.message}`);
  }
}
const YAML = () => tool("yaml");

// ---- configuration keys (include/optsync/config_keys.h) ------------------------

// name -> {type, def}; parsed from the X-macro rows, the one source of truth.
function configKeys() {
  const src = read("include/optsync/config_keys.h");
  const keys = new Map();
  const re = /OSY_CFG\(\s*(\w+)\s*,\s*"(OPTSYNC_\w+)"\s*,\s*(\w+)\s*,\s*"((?:[^"\\]|\\.)*)"/g;
  let m;
  while ((m = re.exec(src))) keys.set(m[2], { type: m[3], def: m[4] });
  if (keys.size < 10) throw new Error("config_keys.h: could not read the key table");
  return keys;
}
// A known key, or NAME_FILE for a SECRET key. @returns an error or null.
function checkKey(keys, name) {
  if (!name.startsWith("OPTSYNC_")) return null;
  if (keys.has(name)) return null;
  if (name.endsWith("_FILE") && keys.get(name.slice(0, -5))?.type === "SECRET") return null;
  return `${name} is not a configuration key (include/optsync/config_keys.h); a worker refuses to start with it`;
}
// Parse "25s", "250ms", "2m", "1h" (bare = ms) to ms.
function durationMs(v) {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(String(v).trim());
  if (!m) return NaN;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2] || "ms"];
}

// ---- kustomize rendering -------------------------------------------------------

// Every kubectl that can render: the one on PATH (kustomize 5 in kubectl
// 1.27+) and Debian's kubernetes-client 1.20 (kustomize 2.0) from the tools
// folder. The manifests use only fields both understand.
function kubectls() {
  const found = [];
  const sys = which("kubectl");
  if (sys) found.push(sys);
  const deb = path.join(TOOLS, "debian", "usr", "bin", "kubectl");
  if (isExec(deb) && (!sys || fs.realpathSync(sys) !== fs.realpathSync(deb))) found.push(deb);
  return found;
}
function overlayDir(name) {
  const d = path.join(TOP, "deploy", "k8s", "overlays", name);
  if (!fs.existsSync(path.join(d, "kustomization.yaml"))) throw new Error(`no overlay ${d}`);
  return d;
}
function renderWith(kubectl, dir) {
  const r = run(kubectl, ["kustomize", dir]);
  if (r.status !== 0) return { error: `${kubectl} kustomize ${dir}: ${r.stderr.trim()}` };
  const docs = YAML().parseAllDocuments(r.stdout);
  const objs = [];
  for (const d of docs) {
    if (d.errors.length) return { error: `${kubectl}: bad YAML: ${d.errors[0].message}` };
    const o = d.toJS();
    if (!o) continue;
    // kustomize 5 folds long base64 values of Secrets over several lines;
    // the API server's decoder skips the newlines, the schema's "byte"
    // format does not, so compare and validate them unfolded.
    if (o.kind === "Secret" && o.data) for (const k of Object.keys(o.data)) o.data[k] = String(o.data[k]).replace(/\s+/g, "");
    objs.push(o);
  }
  return { objs, kubectl };
}
function render(name) {
  // The last one: Debian's, which starts fastest. `render` proves every
  // kubectl gives the same objects.
  const ks = kubectls();
  if (!ks.length) skip("no kubectl found");
  const r = renderWith(ks[ks.length - 1], overlayDir(name));
  if (r.error) {
    fail(r.error);
    finish(`render ${name}`);
  }
  return r.objs;
}
const id = (o) => `${o.kind}/${o.metadata?.name}`;

// ---- strict schema validation -----------------------------------------------------

const MODELS = {
  v1: "kubernetes-models/v1",
  "apps/v1": "kubernetes-models/apps/v1",
  "batch/v1": "kubernetes-models/batch/v1",
  "policy/v1": "kubernetes-models/policy/v1",
  "autoscaling/v2": "kubernetes-models/autoscaling/v2",
  "networking.k8s.io/v1": "kubernetes-models/networking.k8s.io/v1",
  "keda.sh/v1alpha1": "@kubernetes-models/keda/keda.sh/v1alpha1",
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};

// Runs the model's schema validator on a proxy that records which fields it
// looks at. The generated validators read every field their schema knows
// (and enumerate maps), so a field of a checked object that was never read
// is unknown to the schema: a typo the API server would drop or refuse.
function validateStrict(obj) {
  const base = MODELS[obj.apiVersion];
  if (!base) return [`${id(obj)}: no schema for apiVersion ${obj.apiVersion}`];
  const mod = tool(`${base}/${obj.kind}`);
  const Model = mod?.[obj.kind];
  if (!Model) return [`${id(obj)}: no schema for ${obj.apiVersion} ${obj.kind}`];
  const seen = new Map();
  const proxies = new WeakMap();
  const wrap = (o) => {
    if (o === null || typeof o !== "object") return o;
    if (proxies.has(o)) return proxies.get(o);
    const rec = { read: new Set(), touched: false, listed: false };
    seen.set(o, rec);
    const p = new Proxy(o, {
      get(t, k, r) {
        if (typeof k === "string") {
          rec.touched = true;
          if (Object.prototype.hasOwnProperty.call(t, k)) rec.read.add(k);
        }
        return wrap(Reflect.get(t, k, r));
      },
      has(t, k) {
        if (typeof k === "string") {
          rec.touched = true;
          rec.read.add(k);
        }
        return Reflect.has(t, k);
      },
      ownKeys(t) {
        rec.listed = true;
        return Reflect.ownKeys(t);
      },
    });
    proxies.set(o, p);
    return p;
  };
  const errs = [];
  try {
    Model.prototype.validate.call(wrap(obj));
  } catch (e) {
    errs.push(`${id(obj)}: ${e.message}`);
  }
  const walk = (o, where) => {
    if (Array.isArray(o)) return o.forEach((v, i) => walk(v, `${where}[${i}]`));
    if (o === null || typeof o !== "object") return;
    const rec = seen.get(o);
    for (const k of Object.keys(o)) {
      if (rec && rec.touched && !rec.listed && !rec.read.has(k)) errs.push(`${id(obj)}: unknown field ${where}.${k}`);
      walk(o[k], `${where}.${k}`);
    }
  };
  walk(obj, "");
  return errs;
}

// ---- quantities ---------------------------------------------------------------

function cpuMilli(q) {
  const s = String(q);
  return s.endsWith("m") ? Number(s.slice(0, -1)) : Number(s) * 1000;
}
function memBytes(q) {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
  if (!m) return NaN;
  const mul = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * (m[2] ? mul[m[2]] : 1);
}

// ---- policy: optsync's rules for the rendered objects ------------------------------

const isOptsyncImage = (img) => /(^|\/)optsync(:|@|$)/.test(img || "");
const podSpecOf = (o) => (["Deployment", "StatefulSet", "Job"].includes(o.kind) ? o.spec?.template?.spec : null);
const matches = (sel, labels) => sel && Object.entries(sel).every(([k, v]) => labels?.[k] === v);

function policy(overlay, objs) {
  const keys = configKeys();
  const byKind = (k) => objs.filter((o) => o.kind === k);
  const find = (k, n) => objs.find((o) => o.kind === k && o.metadata?.name === n);
  const cms = byKind("ConfigMap");
  const secrets = byKind("Secret");
  const workloads = objs.filter(podSpecOf);
  const config = cms.find((c) => c.metadata.name.startsWith("optsync-config"));
  if (!config) fail("no optsync-config ConfigMap");
  const cfg = config?.data || {};
  const cfgVal = (k) => cfg[k] ?? keys.get(k)?.def;

  for (const o of objs) {
    for (const [k, v] of Object.entries(o.data || {})) {
      if (o.kind === "ConfigMap" && k.startsWith("OPTSYNC_")) {
        const e = checkKey(keys, k);
        if (e) fail(`${id(o)}: ${e}`);
        if (typeof v !== "string") fail(`${id(o)}: ${k} must be a string`);
      }
    }
  }

  const graceMs = durationMs(cfgVal("OPTSYNC_SHUTDOWN_GRACE"));
  const adminPort = Number(cfgVal("OPTSYNC_ADMIN_PORT"));
  const running = new Map(); // worker -> workload
  let sandboxes = 0;

  for (const w of workloads) {
    const spec = podSpecOf(w);
    const containers = spec.containers || [];
    const ours = containers.filter((c) => isOptsyncImage(c.image));
    for (const c of containers) {
      if (!c.image || /:latest$/.test(c.image) || !/[:@]/.test(c.image.split("/").pop()))
        fail(`${id(w)}: container ${c.name} image "${c.image}" must carry a pinned tag`);
      if (!c.resources?.requests?.memory || !c.resources?.requests?.cpu || !c.resources?.limits?.memory)
        fail(`${id(w)}: container ${c.name} needs cpu and memory requests and a memory limit`);
      const rq = c.resources?.requests || {};
      const lm = c.resources?.limits || {};
      if (lm.memory && rq.memory && memBytes(rq.memory) > memBytes(lm.memory))
        fail(`${id(w)}: container ${c.name} memory request above its limit`);
      if (lm.cpu && rq.cpu && cpuMilli(rq.cpu) > cpuMilli(lm.cpu)) fail(`${id(w)}: container ${c.name} cpu request above its limit`);
      if (spec.enableServiceLinks !== false)
        fail(`${id(w)}: enableServiceLinks must be false (Service variables such as OPTSYNC_AC_INGEST_PORT or KAFKA_PORT leak into the environment)`);
      if (spec.automountServiceAccountToken !== false) fail(`${id(w)}: automountServiceAccountToken must be false`);
      const sc = c.securityContext || {};
      if (sc.allowPrivilegeEscalation !== false) fail(`${id(w)}: ${c.name}: allowPrivilegeEscalation must be false`);
      if (!(sc.capabilities?.drop || []).includes("ALL")) fail(`${id(w)}: ${c.name}: capabilities must drop ALL`);
      if (spec.securityContext?.runAsNonRoot !== true && sc.runAsNonRoot !== true) fail(`${id(w)}: ${c.name}: runAsNonRoot must be true`);
      if (spec.securityContext?.seccompProfile?.type !== "RuntimeDefault") fail(`${id(w)}: seccompProfile must be RuntimeDefault`);
    }
    for (const c of ours) {
      const sc = c.securityContext || {};
      if (sc.readOnlyRootFilesystem !== true) fail(`${id(w)}: ${c.name}: readOnlyRootFilesystem must be true`);
      if (spec.securityContext?.runAsUser !== 10001) fail(`${id(w)}: runAsUser must be the image's uid 10001 (the spool and secrets are readable by it)`);
      const prog = (c.args || c.command || [])[0];
      if (prog === "optsync-sandbox") sandboxes++;
      // The environment: ConfigMaps and Secrets referenced must exist; every
      // OPTSYNC_* key must be one a worker accepts.
      const env = {};
      for (const ef of c.envFrom || []) {
        if (ef.configMapRef) {
          const cm = find("ConfigMap", ef.configMapRef.name);
          if (!cm) fail(`${id(w)}: envFrom ConfigMap ${ef.configMapRef.name} does not exist`);
          else Object.assign(env, cm.data);
        }
        if (ef.secretRef && !find("Secret", ef.secretRef.name)) fail(`${id(w)}: envFrom Secret ${ef.secretRef.name} does not exist`);
      }
      for (const e of c.env || []) {
        const err = checkKey(keys, e.name);
        if (err) fail(`${id(w)}: ${err}`);
        env[e.name] = e.value ?? "(from ref)";
      }
      // Volumes: every mount is declared; secret volumes name existing
      // Secrets; files the configuration points at exist in them.
      const vols = new Map((spec.volumes || []).map((v) => [v.name, v]));
      for (const t of w.spec.volumeClaimTemplates || []) vols.set(t.metadata.name, { pvc: t });
      const mountOf = (file) => (c.volumeMounts || []).find((m) => file.startsWith(m.mountPath.replace(/\/?$/, "/")));
      for (const m of c.volumeMounts || []) if (!vols.has(m.name)) fail(`${id(w)}: volumeMount ${m.name} has no volume`);
      for (const v of vols.values()) {
        if (v.secret && !find("Secret", v.secret.secretName)) fail(`${id(w)}: volume ${v.name}: Secret ${v.secret.secretName} does not exist`);
        // Secret files are root-owned; without world read the worker reads
        // them only through its group, which fsGroup provides.
        const mode = v.secret?.defaultMode ?? 0o644;
        if (v.secret && !(mode & 0o004) && spec.securityContext?.fsGroup !== 10001)
          fail(`${id(w)}: volume ${v.name} (mode ${mode.toString(8)}) is unreadable by uid 10001 without fsGroup 10001`);
      }
      for (const [k, v] of Object.entries(env)) {
        if (!(k === "OPTSYNC_TENANTS_FILE" || (k.startsWith("OPTSYNC_") && k.endsWith("_FILE")))) continue;
        if (!v) continue;
        const m = mountOf(v);
        const vol = m && vols.get(m.name);
        const sec = vol?.secret && find("Secret", vol.secret.secretName);
        const key = v.slice(m ? m.mountPath.replace(/\/?$/, "/").length : 0);
        const has = sec && (key in (sec.data || {}) || key in (sec.stringData || {}));
        if (!has) fail(`${id(w)}: ${k}=${v} is not a key of a mounted Secret`);
      }
      if (!WORKERS.includes(prog)) continue;
      if (w.kind === "Job") continue;
      running.set(prog, w);
      // Probes on the admin port; a grace period that covers the drain.
      const port = (c.ports || []).find((p) => p.name === "admin");
      if (!port || port.containerPort !== adminPort) fail(`${id(w)}: needs a containerPort named admin = OPTSYNC_ADMIN_PORT (${adminPort})`);
      const lp = c.livenessProbe?.httpGet;
      const rp = c.readinessProbe?.httpGet;
      if (lp?.path !== "/healthz" || (lp.port !== "admin" && lp.port !== adminPort)) fail(`${id(w)}: livenessProbe must GET /healthz on the admin port`);
      if (rp?.path !== "/readyz" || (rp.port !== "admin" && rp.port !== adminPort)) fail(`${id(w)}: readinessProbe must GET /readyz on the admin port`);
      const pre = c.lifecycle?.preStop?.exec?.command;
      const preMs = pre && pre[0] === "sleep" ? Number(pre[1]) * 1000 : 0;
      const tg = (spec.terminationGracePeriodSeconds ?? 30) * 1000;
      if (tg < preMs + graceMs + 5000)
        fail(`${id(w)}: terminationGracePeriodSeconds ${tg / 1000} s does not cover preStop ${preMs / 1000} s + OPTSYNC_SHUTDOWN_GRACE ${graceMs / 1000} s + 5 s`);
      if (prog === "ac-ingest") {
        const spool = env.OPTSYNC_INGEST_SPOOL_DIR || keys.get("OPTSYNC_INGEST_SPOOL_DIR").def;
        const m = (c.volumeMounts || []).find((mm) => mm.mountPath.replace(/\/$/, "") === spool.replace(/\/$/, ""));
        if (!m || !vols.get(m.name)?.pvc) fail(`${id(w)}: the spool (${spool}) must be a per-replica persistent volume (volumeClaimTemplates)`);
        if (!(c.ports || []).some((p) => p.name === "webhook" && String(p.containerPort) === String(cfgVal("OPTSYNC_INGEST_PORT"))))
          fail(`${id(w)}: needs a containerPort named webhook = OPTSYNC_INGEST_PORT`);
      }
    }
  }
  for (const wk of WORKERS) if (!running.has(wk)) fail(`no workload runs ${wk}`);
  if (overlay === "dev" && sandboxes !== 1) fail("dev must run the sandbox once");
  if (overlay === "prod" && sandboxes !== 0) fail("prod must not run the sandbox");

  // Services select pods and name their ports; the Ingress points at them.
  const pods = workloads.map((w) => ({ w, labels: w.spec.template.metadata?.labels || {}, spec: podSpecOf(w) }));
  for (const s of byKind("Service")) {
    const sel = pods.filter((p) => matches(s.spec.selector, p.labels));
    if (!sel.length) fail(`${id(s)}: selects no pod`);
    for (const p of s.spec.ports || []) {
      if (typeof p.targetPort === "string" && !sel.some((x) => x.spec.containers.some((c) => (c.ports || []).some((cp) => cp.name === p.targetPort))))
        fail(`${id(s)}: targetPort ${p.targetPort} is no container port of the selected pods`);
    }
  }
  for (const ing of byKind("Ingress")) {
    for (const r of ing.spec.rules || [])
      for (const p of r.http?.paths || []) {
        const b = p.backend.service;
        const s = find("Service", b.name);
        if (!s) fail(`${id(ing)}: backend Service ${b.name} does not exist`);
        else if (!(s.spec.ports || []).some((sp) => sp.name === b.port.name || sp.port === b.port.number))
          fail(`${id(ing)}: Service ${b.name} has no port ${b.port.name ?? b.port.number}`);
      }
  }
  for (const ss of byKind("StatefulSet")) {
    const svc = find("Service", ss.spec.serviceName);
    if (!svc || svc.spec.clusterIP !== "None") fail(`${id(ss)}: serviceName ${ss.spec.serviceName} must be a headless Service`);
  }
  // Every long-running worker has a PDB; autoscaled workloads carry no
  // replica count of their own (an apply would fight the autoscaler).
  for (const [wk, w] of running) {
    const lbl = w.spec.template.metadata.labels;
    if (!byKind("PodDisruptionBudget").some((p) => matches(p.spec.selector?.matchLabels, lbl))) fail(`${id(w)} (${wk}) has no PodDisruptionBudget`);
  }
  for (const p of byKind("PodDisruptionBudget"))
    if (!pods.some((x) => matches(p.spec.selector?.matchLabels, x.labels))) fail(`${id(p)}: selects no pod`);
  for (const np of byKind("NetworkPolicy"))
    if (!pods.some((x) => matches(np.spec.podSelector?.matchLabels, x.labels))) fail(`${id(np)}: selects no pod`);
  const scaled = new Map();
  for (const h of byKind("HorizontalPodAutoscaler")) {
    const t = find(h.spec.scaleTargetRef.kind, h.spec.scaleTargetRef.name);
    if (!t) fail(`${id(h)}: target ${h.spec.scaleTargetRef.kind}/${h.spec.scaleTargetRef.name} does not exist`);
    else scaled.set(id(t), id(h));
  }
  const groups = { rules: "OPTSYNC_KAFKA_GROUP_ID", "sf-writer": "OPTSYNC_SF_WRITER_GROUP_ID", "ac-writer": "OPTSYNC_AC_WRITER_GROUP_ID" };
  const topics = { rules: ["ac.events", "sf.events"], "sf-writer": ["sf.commands"], "ac-writer": ["ac.commands"] };
  for (const so of byKind("ScaledObject")) {
    const ref = so.spec.scaleTargetRef;
    const t = find(ref.kind || "Deployment", ref.name);
    if (!t) {
      fail(`${id(so)}: target ${ref.name} does not exist`);
      continue;
    }
    if (scaled.has(id(t))) fail(`${id(so)}: ${id(t)} is already scaled by ${scaled.get(id(t))}`);
    scaled.set(id(t), id(so));
    const wk = [...running].find(([, w]) => w === t)?.[0];
    const want = new Set((topics[wk] || []).map((s) => `${cfgVal("OPTSYNC_KAFKA_TOPIC_PREFIX")}.${s}`));
    const got = new Set();
    for (const tr of so.spec.triggers || []) {
      if (tr.type !== "kafka") continue;
      const md = tr.metadata || {};
      if (md.bootstrapServers !== cfgVal("OPTSYNC_KAFKA_BOOTSTRAP"))
        fail(`${id(so)}: bootstrapServers ${md.bootstrapServers} differs from OPTSYNC_KAFKA_BOOTSTRAP ${cfgVal("OPTSYNC_KAFKA_BOOTSTRAP")}`);
      if (groups[wk] && md.consumerGroup !== cfgVal(groups[wk]))
        fail(`${id(so)}: consumerGroup ${md.consumerGroup} differs from ${groups[wk]} (${cfgVal(groups[wk])})`);
      got.add(md.topic);
    }
    for (const tp of want) if (!got.has(tp)) fail(`${id(so)}: no trigger on topic ${tp}, which ${wk} consumes`);
    for (const tp of got) if (!want.has(tp)) fail(`${id(so)}: trigger on topic ${tp}, which ${wk} does not consume`);
  }
  for (const [tid] of scaled) {
    const w = objs.find((o) => id(o) === tid);
    if (w?.spec?.replicas !== undefined) fail(`${tid}: autoscaled, so it must not set spec.replicas`);
  }

  // Secrets: the sandbox's made-up credentials (dev) or placeholders.
  const sandboxTenants = JSON.parse(read("deploy/sandbox/tenants.json"));
  for (const s of secrets) {
    const vals = { ...(s.stringData || {}) };
    for (const [k, v] of Object.entries(s.data || {})) vals[k] = Buffer.from(v, "base64").toString("utf8");
    for (const [k, v] of Object.entries(vals)) {
      if (k.endsWith(".json")) {
        let doc;
        try {
          doc = JSON.parse(v);
        } catch (e) {
          fail(`${id(s)}: ${k} is not valid JSON: ${e.message}`);
          continue;
        }
        const isSandbox = JSON.stringify(doc) === JSON.stringify(sandboxTenants);
        const secretFields = ["api_token", "webhook_token", "client_secret", "refresh_token"];
        const real = (doc.tenants || []).flatMap((t) => secretFields.map((f) => [t.id, f, t.ac?.[f] ?? t.sf?.[f]])).filter(([, , x]) => x !== undefined && x !== "REPLACE_ME");
        if (!isSandbox && real.length) fail(`${id(s)}: ${k} holds a value that looks real (${real[0][0]}.${real[0][1]}): templates must use REPLACE_ME`);
      } else if (v !== "" && v !== "REPLACE_ME") fail(`${id(s)}: ${k} must be empty or REPLACE_ME in a committed template`);
    }
  }
  finish(`policy ${overlay}`);
}

// ---- compose ------------------------------------------------------------------

// docker-compose (Python) takes a few seconds to start, so the variants
// run side by side. @returns a promise of the resolved file, or null.
function composeConfig(extraArgs) {
  const dc = which("docker-compose");
  if (!dc) skip("docker-compose not found");
  // A clean environment: a developer's OPTSYNC_* or COMPOSE_* variables
  // must not change what is validated.
  const env = { PATH: process.env.PATH, HOME: process.env.HOME || "/tmp" };
  const args = ["--project-directory", TOP, "-f", path.join(TOP, "docker-compose.yml"), ...extraArgs, "config"];
  return new Promise((resolve) => {
    execFile(dc, args, { env, cwd: os.tmpdir(), maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) {
        fail(`docker-compose config ${extraArgs.join(" ")}: ${String(stderr || err.message).trim()}`);
        resolve(null);
      } else resolve(YAML().parse(stdout));
    });
  });
}
function composeServices(doc) {
  return Object.entries(doc?.services || {});
}
function composeEnv(svc) {
  const e = svc.environment || {};
  if (Array.isArray(e)) return Object.fromEntries(e.map((kv) => [kv.split("=")[0], kv.slice(kv.indexOf("=") + 1)]));
  return e;
}

async function compose() {
  const keys = configKeys();
  const [plain, withEnv] = await Promise.all([composeConfig([]), composeConfig(["--env-file", path.join(TOP, ".env.example")])]);
  if (!plain || !withEnv) finish("compose");
  const grace = durationMs(keys.get("OPTSYNC_SHUTDOWN_GRACE").def);
  for (const [label, doc] of [["defaults", plain], [".env.example", withEnv]]) {
    const svcs = composeServices(doc);
    const byProg = new Map();
    for (const [name, s] of svcs) {
      const cmd = s.command || [];
      if (isOptsyncImage(s.image)) {
        if (!s.read_only) fail(`compose (${label}) ${name}: read_only must be true`);
        if (!(s.cap_drop || []).includes("ALL")) fail(`compose (${label}) ${name}: cap_drop must hold ALL`);
        if (!(s.security_opt || []).some((o) => /^no-new-privileges(:true)?$/.test(o))) fail(`compose (${label}) ${name}: needs security_opt no-new-privileges`);
      }
      for (const k of Object.keys(composeEnv(s))) {
        const e = checkKey(keys, k);
        if (e) fail(`compose (${label}) ${name}: ${e}`);
      }
      if (WORKERS.includes(cmd[0]) && !cmd.includes("register")) byProg.set(cmd[0], [name, s]);
    }
    for (const wk of WORKERS) {
      const x = byProg.get(wk);
      if (!x) {
        fail(`compose (${label}): no service runs ${wk}`);
        continue;
      }
      const [name, s] = x;
      if (!s.healthcheck?.test) fail(`compose ${name}: needs a healthcheck`);
      else if (!s.healthcheck.test.join(" ").includes(":9090/readyz")) fail(`compose ${name}: the healthcheck must GET /readyz on the admin port`);
      if (!["unless-stopped", "always", "on-failure"].includes(s.restart)) fail(`compose ${name}: needs a restart policy`);
      const sg = durationMs(String(s.stop_grace_period || "10s").replace(/^(\d+)s$/, "$1s"));
      if (!(sg >= grace + 5000)) fail(`compose ${name}: stop_grace_period ${s.stop_grace_period} does not cover OPTSYNC_SHUTDOWN_GRACE + 5 s`);
    }
    const svc = Object.fromEntries(svcs);
    if (!/^apache\/kafka:\d/.test(svc.kafka?.image || "")) fail("compose: kafka must use a pinned apache/kafka image");
    if (!(composeEnv(svc.kafka || {}).KAFKA_PROCESS_ROLES || "").includes("controller")) fail("compose: kafka must run in KRaft mode");
    const init = JSON.stringify(svc["kafka-init"]?.command || "");
    for (const t of ["ac.events", "sf.events", "sf.commands", "ac.commands", "audit", "dlq"]) if (!init.includes(t)) fail(`compose: kafka-init does not create ${t}`);
    if (!svc.redis || !svc.sandbox) fail("compose: needs redis and the sandbox");
  }
  // .env.example documents exactly the variables docker-compose.yml uses.
  const used = new Set([...read("docker-compose.yml").matchAll(/\$\{(\w+)(?::?-[^}]*)?\}/g)].map((m) => m[1]));
  const documented = new Set(
    read(".env.example")
      .split("\n")
      .filter((l) => /^\w+=/.test(l))
      .map((l) => l.split("=")[0]),
  );
  for (const v of used) if (!documented.has(v)) fail(`.env.example does not document ${v}, which docker-compose.yml uses`);
  for (const v of documented) {
    if (!used.has(v)) fail(`.env.example sets ${v}, which docker-compose.yml never uses`);
    const e = checkKey(keys, v);
    if (e) fail(`.env.example: ${e}`);
  }
  finish("compose");
}

// ---- env: each worker's environment through optsync-config --check ------------------

async function envCheck(bin) {
  if (!bin || !isExec(bin)) {
    console.log(`SKIP: optsync-config not built (${bin})`);
    process.exit(SKIP);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "osy-deploy-env-"));
  const check = (what, env) => {
    const e = { PATH: process.env.PATH };
    for (const [k, v] of Object.entries(env)) {
      if (!k.startsWith("OPTSYNC_")) continue;
      // *_FILE secrets must name a readable, non-empty file.
      if (k.endsWith("_FILE") && k !== "OPTSYNC_TENANTS_FILE") {
        const f = path.join(tmp, k);
        fs.writeFileSync(f, "placeholder\n");
        e[k] = f;
      } else e[k] = String(v);
    }
    const r = run(bin, ["--check"], { env: e });
    if (r.status !== 0) fail(`${what}: optsync-config --check refused the environment:\n${r.stderr.trim()}`);
  };
  try {
    const doc = await composeConfig(["--env-file", path.join(TOP, ".env.example")]);
    for (const [name, s] of composeServices(doc)) if (isOptsyncImage(s.image)) check(`compose ${name}`, composeEnv(s));
    for (const ov of ["dev", "prod"]) {
      const objs = render(ov);
      for (const w of objs.filter(podSpecOf)) {
        for (const c of podSpecOf(w).containers.filter((cc) => isOptsyncImage(cc.image))) {
          const env = {};
          for (const ef of c.envFrom || []) if (ef.configMapRef) Object.assign(env, objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === ef.configMapRef.name)?.data);
          for (const ev of c.env || []) if (ev.value !== undefined) env[ev.name] = ev.value;
          check(`${ov} ${id(w)}`, env);
        }
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  finish("env");
}

// ---- alerts: promtool --------------------------------------------------------------

function promtool() {
  const p = path.join(TOOLS, "debian", "usr", "bin", "promtool");
  if (isExec(p)) return p;
  return which("promtool") || skip("promtool not found");
}
function ruleDoc() {
  return YAML().parse(read("deploy/prometheus/prometheusrule.yaml"));
}
function alerts() {
  const pt = promtool();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "osy-deploy-rules-"));
  try {
    fs.writeFileSync(path.join(tmp, "rules.yaml"), YAML().stringify(ruleDoc().spec));
    fs.copyFileSync(path.join(TOP, "deploy/prometheus/alerts-test.yaml"), path.join(tmp, "alerts-test.yaml"));
    let r = run(pt, ["check", "rules", "rules.yaml"], { cwd: tmp });
    if (r.status !== 0) fail(`promtool check rules:\n${r.stdout}${r.stderr}`);
    r = run(pt, ["test", "rules", "alerts-test.yaml"], { cwd: tmp });
    if (r.status !== 0) fail(`promtool test rules:\n${r.stdout}${r.stderr}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  for (const g of ruleDoc().spec.groups)
    for (const rl of g.rules) {
      if (!rl.alert) continue;
      if (!["warning", "critical"].includes(rl.labels?.severity)) fail(`alert ${rl.alert}: severity must be warning or critical`);
      for (const a of ["summary", "description", "runbook"]) if (!rl.annotations?.[a]) fail(`alert ${rl.alert}: needs the ${a} annotation`);
    }
  finish("alerts");
}

// ---- metrics: what the workers export, what the dashboard and alerts use ------------

// Metric names the C sources register: a name literal followed by a help
// literal (words with spaces), which is how every registration reads
// (osy_metrics_*_new(reg, &m, "name", "Help", ...), or a helper's
// (..., "name", "Help")).
function exportedMetrics() {
  const files = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".c")) files.push(p);
    }
  };
  walk(path.join(TOP, "workers"));
  walk(path.join(TOP, "common"));
  const names = new Map();
  for (const f of files) {
    const src = fs.readFileSync(f, "utf8");
    if (!src.includes("osy_metrics_")) continue;
    for (const m of src.matchAll(/"([a-z_:][a-z0-9_:]*_[a-z0-9_:]*)"\s*,\s*"[^"\n]*\s[^"\n]*"/g)) {
      if (!names.has(m[1])) names.set(m[1], path.relative(TOP, f));
    }
  }
  return names;
}
const PROMQL_WORDS = new Set("by without on ignoring group_left group_right bool and or unless offset inf nan le".split(" "));
// Metric names in a PromQL expression: identifiers that are not functions,
// keywords, label names (inside {} or by (...)), strings or durations.
function promqlMetrics(expr) {
  // Grafana's label_values(EXPR, LABEL): only EXPR holds metric names.
  let s = expr.replace(/label_values\((.*),\s*\w+\s*\)/g, "$1");
  s = s.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  s = s.replace(/\{[^}]*\}/g, "");
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "");
  s = s.replace(/\[[^\]]*\]/g, "");
  s = s.replace(/\$\{?\w+\}?/g, "");
  const out = new Set();
  for (const m of s.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    if (m[2] || PROMQL_WORDS.has(m[1].toLowerCase())) continue;
    if (/^\d/.test(m[1])) continue;
    out.add(m[1]);
  }
  return out;
}
function metricBase(name, exported) {
  if (exported.has(name)) return name;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  return m && exported.has(m[1]) ? m[1] : name;
}
const EXTERNAL = new Set(["up"]); // Prometheus' own scrape health

function metrics() {
  const exported = exportedMetrics();
  if (!exported.size) fail("found no metric registrations in workers/ and common/");
  const uses = [];
  let dash;
  try {
    dash = JSON.parse(read("deploy/prometheus/optsync-dashboard.json"));
  } catch (e) {
    fail(`optsync-dashboard.json is not valid JSON: ${e.message}`);
  }
  if (dash) {
    if (!dash.title || !dash.uid || !Array.isArray(dash.panels)) fail("dashboard: needs title, uid and panels");
    const ids = new Set();
    const panels = (dash.panels || []).flatMap((p) => [p, ...(p.panels || [])]);
    for (const p of panels) {
      if (ids.has(p.id)) fail(`dashboard: panel id ${p.id} used twice`);
      ids.add(p.id);
      if (!p.gridPos) fail(`dashboard: panel ${p.title} has no gridPos`);
      for (const t of p.targets || []) {
        if (!t.expr) fail(`dashboard: panel ${p.title} has a target without expr`);
        else uses.push([`dashboard panel "${p.title}"`, t.expr]);
      }
      if (p.type !== "row" && !(p.targets || []).length) fail(`dashboard: panel ${p.title} has no query`);
    }
    for (const v of dash.templating?.list || []) if (v.definition) uses.push([`dashboard variable ${v.name}`, v.definition]);
  }
  for (const g of ruleDoc().spec.groups) for (const r of g.rules) uses.push([`alert ${r.alert || r.record}`, String(r.expr)]);
  const used = new Set();
  for (const [where, expr] of uses) {
    for (const n of promqlMetrics(expr)) {
      if (EXTERNAL.has(n)) continue;
      const base = metricBase(n, exported);
      if (!exported.has(base)) fail(`${where}: metric ${n} is not exported by any worker (searched workers/ and common/)`);
      else used.add(base);
    }
  }
  // The docs list every metric a worker exports.
  const docs = read("docs/operations.md");
  for (const [n, f] of exported) if (!docs.includes(`\`${n}\``)) fail(`docs/operations.md does not describe metric ${n} (registered in ${f})`);
  console.log(`metrics: ${exported.size} exported, ${used.size} used by the dashboard and alerts`);
  finish("metrics");
}

// ---- docs ----------------------------------------------------------------------

// GitHub's heading anchors: lower case, punctuation dropped, spaces to "-".
const anchor = (h) =>
  h
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, "")
    .replace(/ /g, "-");

function docs() {
  const text = read("docs/operations.md");
  const anchors = new Set([...text.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => anchor(m[1].replace(/`/g, ""))));
  for (const g of ruleDoc().spec.groups)
    for (const r of g.rules) {
      if (!r.alert) continue;
      const want = String(r.annotations?.runbook || "").split("#")[1];
      if (!want || !anchors.has(want)) fail(`alert ${r.alert}: runbook section #${want} missing in docs/operations.md`);
      if (!text.includes(r.alert)) fail(`docs/operations.md does not mention alert ${r.alert}`);
    }
  // The sizing table: "| `worker` | cpu request | memory request | cpu limit | memory limit |"
  // must equal the base manifests.
  // The table whose header has "cpu request", up to the first blank line.
  const at = text.search(/^\|[^\n]*\| cpu request \|/m);
  const sizing = at < 0 ? "" : text.slice(at).split(/\n\s*\n/)[0];
  if (!sizing) fail("docs/operations.md: no sizing table (a header with | cpu request |)");
  const base = renderWith(kubectls().pop() || skip("no kubectl found"), path.join(TOP, "deploy/k8s/base"));
  if (base.error) fail(base.error);
  for (const w of (base.objs || []).filter(podSpecOf)) {
    for (const c of podSpecOf(w).containers) {
      const prog = (c.args || [])[0];
      if (!WORKERS.includes(prog)) continue;
      const row = new RegExp(`^\\|\\s*\`${prog}\`\\s*\\|([^\\n]*)$`, "m").exec(sizing);
      if (!row) {
        fail(`docs/operations.md: no sizing row for ${prog}`);
        continue;
      }
      const cells = row[1].split("|").map((x) => x.trim());
      const r = c.resources;
      const want = [r.requests.cpu, r.requests.memory, r.limits.cpu, r.limits.memory].map(String);
      if (want.some((v, i) => cells[i] !== v)) fail(`docs/operations.md: sizing row of ${prog} says ${cells.slice(0, 4).join(" / ")}, the manifest ${want.join(" / ")}`);
    }
  }
  for (const s of Object.keys(YAML().parse(read("docker-compose.yml")).services))
    if (!text.includes(`\`${s}\``)) fail(`docs/operations.md does not mention compose service ${s}`);
  for (const f of ["deploy/k8s/overlays/dev", "deploy/k8s/overlays/prod", "docker-compose.yml", ".env.example", "deploy/docker/Dockerfile"])
    if (!text.includes(f)) fail(`docs/operations.md does not mention ${f}`);
  finish("docs");
}

// ---- dockerfile ------------------------------------------------------------------

function dockerfile(bins) {
  const text = read("deploy/docker/Dockerfile");
  const lines = text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const instr = lines.map((l) => [l.split(/\s+/)[0].toUpperCase(), l.slice(l.split(/\s+/)[0].length).trim()]);
  const args = Object.fromEntries(instr.filter(([i]) => i === "ARG").map(([, a]) => a.split("=")).filter((x) => x.length === 2));
  const froms = instr.filter(([i]) => i === "FROM").map(([, a]) => a.replace(/\$\{(\w+)\}/g, (_, v) => args[v] ?? "?"));
  if (froms.length < 2) fail("Dockerfile: must be multi-stage (a builder and a runtime stage)");
  for (const f of froms) {
    const img = f.split(/\s+/)[0];
    if (!/^debian:(12\.\d+|bookworm-\d{8})(-slim)?(@sha256:[0-9a-f]{64})?$/.test(img))
      fail(`Dockerfile: base ${img} must be Debian bookworm pinned to a point release (debian:12.N-slim) or a dated tag`);
  }
  if (!/\bAS\s+runtime\b/i.test(froms[froms.length - 1] || "")) fail("Dockerfile: the last stage must be the runtime stage");
  const last = instr.slice(instr.map(([i]) => i).lastIndexOf("FROM"));
  const users = last.filter(([i]) => i === "USER").map(([, a]) => a);
  if (!users.length) fail("Dockerfile: the runtime stage must set USER");
  else if (!/^[1-9]\d*(:[1-9]\d*)?$/.test(users[users.length - 1])) fail("Dockerfile: the final USER must be a numeric non-root uid (Kubernetes runAsNonRoot checks it)");
  for (const [i, a] of instr) {
    if ((i === "ENV" || i === "ARG") && /(PASSWORD|SECRET|TOKEN|API_?KEY|PRIVATE)/i.test(a.split(/[= ]/)[0])) fail(`Dockerfile: ${i} ${a.split(/[= ]/)[0]} looks like a secret baked into the image`);
    if (i === "ADD" && /https?:\/\//.test(a)) fail("Dockerfile: ADD from a URL (unpinned download)");
    if (i === "COPY" && /(\.env|tenants\.json|\.pem|\.key)\b/.test(a) && !a.includes("deploy/sandbox")) fail(`Dockerfile: COPY ${a} may copy secrets`);
    if (i === "RUN" && /apt-get install/.test(a)) {
      if (!a.includes("--no-install-recommends")) fail("Dockerfile: apt-get install without --no-install-recommends");
      if (!/rm -rf \/var\/lib\/apt\/lists/.test(a)) fail("Dockerfile: apt lists are not removed in the same RUN");
    }
    if (/:latest\b/.test(a) && i === "FROM") fail("Dockerfile: a :latest image");
  }
  // Every worker binary reaches the image.
  for (const w of WORKERS) if (!text.includes(`/build/workers/${w}/${w}`)) fail(`Dockerfile: does not install ${w}`);
  for (const t of ["optsync-sandbox", "optsync-embedded-kafka", "optsync-config"]) if (!text.includes(`/${t} `) && !text.includes(`/${t}\n`)) fail(`Dockerfile: does not install ${t}`);
  // The build context (.dockerignore is an allowlist) holds every directory
  // the top CMakeLists.txt builds.
  const ignore = read(".dockerignore").split("\n");
  const allowed = new Set(ignore.filter((l) => l.startsWith("!")).map((l) => l.slice(1).replace(/\/$/, "")));
  for (const m of read("CMakeLists.txt").matchAll(/add_subdirectory\(([\w/]+)\)/g)) {
    const top = m[1].split("/")[0];
    if (!allowed.has(top)) fail(`.dockerignore: ${top}/ is built by CMakeLists.txt but left out of the build context`);
  }
  for (const need of ["CMakeLists.txt", "scripts", "include", "cmake"]) if (!allowed.has(need)) fail(`.dockerignore: must allow ${need}`);
  if (!ignore.some((l) => l.trim() === "*")) fail(".dockerignore: must start from * (an allowlist) so no .env or key file slips in");
  // The runtime packages cover every shared library the binaries link.
  const installed = new Set();
  for (const [i, a] of last) if (i === "RUN" && a.includes("apt-get install")) for (const w of a.split(/\s+/)) if (/^[a-z0-9][a-z0-9.+-]+$/.test(w)) installed.add(w);
  // Only the libraries of optsync's own dependencies: everything else
  // comes with them or with the base image. One dpkg query for all.
  const libs = new Map(); // resolved path -> [binary, soname path]
  for (const b of bins) {
    if (!isExec(b)) continue;
    const r = run("ldd", [b]);
    for (const m of r.stdout.matchAll(/=>\s+(\S+)/g)) {
      if (!/lib(rdkafka|curl|cjson|hiredis|microhttpd|ssl|crypto)\b/.test(m[1])) continue;
      const real = fs.realpathSync(m[1]);
      if (!libs.has(real)) libs.set(real, [path.basename(b), m[1]]);
    }
  }
  if (libs.size) {
    const q = run("dpkg", ["-S", ...libs.keys()]);
    const owner = new Map();
    for (const line of q.stdout.split("\n")) {
      const i = line.indexOf(": ");
      if (i > 0) owner.set(line.slice(i + 2).trim(), line.slice(0, i).split(":")[0]);
    }
    for (const [real, [bin, lib]] of libs) {
      const pkg = owner.get(real);
      if (!pkg) continue; // not from a Debian package: nothing to install
      if (pkg.endsWith("-dev")) fail(`${bin} links ${lib} from a -dev package`);
      else if (!installed.has(pkg)) fail(`Dockerfile: ${bin} needs ${lib} from ${pkg}, which the runtime stage does not install`);
    }
  }
  finish("dockerfile");
}

// ---- tenants: the shipped tenants files load as a worker loads them ---------------

function tenants(bin) {
  if (!bin || !isExec(bin)) {
    console.log(`SKIP: check_tenants not built (${bin})`);
    process.exit(SKIP);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "osy-deploy-tenants-"));
  try {
    const files = [path.join(TOP, "deploy/sandbox/tenants.json"), path.join(TOP, "deploy/k8s/overlays/dev/tenants.json")];
    if (read("deploy/sandbox/tenants.json") !== read("deploy/k8s/overlays/dev/tenants.json"))
      fail("deploy/k8s/overlays/dev/tenants.json must be a copy of deploy/sandbox/tenants.json (kustomize reads no file outside the overlay)");
    // The Secret template's tenants.json, with its placeholders, must still
    // be a file the workers accept: only the values need replacing.
    const sec = YAML().parse(read("deploy/k8s/overlays/prod/secret.yaml"));
    for (const [k, v] of Object.entries(sec.stringData || {})) {
      if (!k.endsWith(".json")) continue;
      const f = path.join(tmp, `prod-secret-${k}`);
      fs.writeFileSync(f, v);
      files.push(f);
    }
    const r = run(bin, files);
    process.stdout.write(r.stdout);
    if (r.status !== 0) fail(`tenants files refused:\n${r.stderr.trim()}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  finish("tenants");
}

// ---- main ------------------------------------------------------------------------

async function main() {
  const [cmd, ...rest] = process.argv.slice(2);
  switch (cmd) {
    case "render": {
      const name = rest[0];
      const ks = kubectls();
      if (!ks.length) skip("no kubectl found");
      const results = ks.map((k) => renderWith(k, overlayDir(name)));
      for (const r of results) if (r.error) fail(r.error);
      if (problems.length) finish(`render ${name}`);
      // Generated names carry a content hash that differs between kustomize
      // versions; compare with it removed, objects in a stable order.
      const norm = (objs) => {
        const hashes = new Map();
        for (const o of objs) {
          const m = /^(.*)-([a-z0-9]{10})$/.exec(o.metadata.name);
          if (m && ["ConfigMap", "Secret"].includes(o.kind)) hashes.set(o.metadata.name, m[1]);
        }
        let s = JSON.stringify(objs, (k, v) => {
          if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 0 && (k === "annotations" || k === "labels")) return undefined;
          return v;
        });
        for (const [h, plain] of hashes) s = s.split(`"${h}"`).join(`"${plain}"`);
        return JSON.parse(s)
          .map((o) => JSON.stringify(o, Object.keys(flatKeys(o)).sort()))
          .sort();
      };
      const ref = norm(results[0].objs);
      for (const r of results.slice(1)) {
        const other = norm(r.objs);
        if (JSON.stringify(other) !== JSON.stringify(ref)) {
          const a = new Set(ref);
          const diff = other.filter((x) => !a.has(x)).map((x) => JSON.parse(x));
          fail(`${r.kubectl} renders ${name} differently from ${results[0].kubectl}: ${diff.map(id).join(", ")}`);
        }
      }
      if (!ref.length) fail(`${name} renders no object`);
      console.log(`render ${name}: ${ref.length} objects, identical with ${ks.length} kubectl(s): ${ks.join(", ")}`);
      finish(`render ${name}`);
      break;
    }
    case "schema": {
      const objs = render(rest[0]);
      const kinds = new Map();
      for (const o of objs) {
        for (const e of validateStrict(o)) fail(e);
        kinds.set(o.kind, (kinds.get(o.kind) || 0) + 1);
      }
      console.log(`schema ${rest[0]}: ${[...kinds].map(([k, n]) => `${n} ${k}`).join(", ")}`);
      finish(`schema ${rest[0]}`);
      break;
    }
    case "policy":
      policy(rest[0], render(rest[0]));
      break;
    case "compose":
      await compose();
      break;
    case "env":
      await envCheck(rest[0]);
      break;
    case "alerts":
      alerts();
      break;
    case "metrics":
      metrics();
      break;
    case "docs":
      docs();
      break;
    case "dockerfile":
      dockerfile(rest);
      break;
    case "tenants":
      tenants(rest[0]);
      break;
    case "selftest":
      selftest();
      break;
    default:
      console.error("usage: validate.mjs render|schema|policy OVERLAY | compose | env CONFIG_BIN | alerts | metrics | docs | dockerfile [BIN...] | tenants CHECK_BIN | selftest");
      process.exit(2);
  }
}

// Every key path of an object, so JSON.stringify can sort keys at all depths.
function flatKeys(o, acc = {}) {
  if (o && typeof o === "object") {
    for (const [k, v] of Object.entries(o)) {
      acc[k] = true;
      flatKeys(v, acc);
    }
  }
  return acc;
}

// The checkers check themselves: known-bad objects must be refused, so a
// validator that silently accepts everything fails here.
function selftest() {
  const good = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "x", labels: { a: "b" } },
    spec: {
      selector: { matchLabels: { a: "b" } },
      template: { metadata: { labels: { a: "b" } }, spec: { containers: [{ name: "c", image: "i:1", ports: [{ containerPort: 80 }] }] } },
    },
  };
  const bad = (mut) => {
    const o = JSON.parse(JSON.stringify(good));
    mut(o);
    return validateStrict(o);
  };
  if (validateStrict(good).length) fail(`selftest: a valid Deployment was refused: ${validateStrict(good)}`);
  const typo = bad((o) => (o.spec.template.spec.containers[0].readinesProbe = {}));
  if (!typo.some((e) => e.includes("unknown field .spec.template.spec.containers[0].readinesProbe"))) fail(`selftest: a misspelt field passed: ${typo}`);
  const type = bad((o) => (o.spec.template.spec.containers[0].ports[0].containerPort = "80"));
  if (!type.length) fail("selftest: a string port passed");
  const miss = bad((o) => delete o.spec.selector);
  if (!miss.length) fail("selftest: a Deployment without selector passed");
  const so = validateStrict({
    apiVersion: "keda.sh/v1alpha1",
    kind: "ScaledObject",
    metadata: { name: "s" },
    spec: { scaleTargetRef: { name: "x" }, triggers: [{ type: "kafka", metadata: { topic: "t" }, metdata: {} }] },
  });
  if (!so.some((e) => e.includes("metdata"))) fail(`selftest: a misspelt ScaledObject field passed: ${so}`);
  const pq = promqlMetrics('sum by (pod) (rate(foo_total{job="x"}[5m])) / on(pod) group_left bar > 3 and up + label_values(baz{a="b"}, namespace)');
  if ([...pq].sort().join(",") !== "bar,baz,foo_total,up") fail(`selftest: promql metric names: ${[...pq]}`);
  const keys = configKeys();
  if (checkKey(keys, "OPTSYNC_REDIS_PASSWORD_FILE") || !checkKey(keys, "OPTSYNC_REDIS_HOST_FILE") || !checkKey(keys, "OPTSYNC_NOPE"))
    fail("selftest: config key check");
  finish("selftest");
}

main().catch((e) => {
  console.error(`FAIL: ${e.stack || e.message}`);
  process.exit(1);
});
