/**
 * `deploy/kubernetes/` renders, every object is valid against the Kubernetes schemas, and the
 * manifests agree with the service itself: the variables they set are ones the service
 * reads, the Secret carries what production requires, the ports are the configured ones, the
 * probes are routes the app serves, the grace period covers the drain the pods are configured
 * with, the selectors select the pods, the autoscaler scales on a gauge the pods export, and
 * the Ingress keeps the reference nginx's SSE settings. The renderer (`kubernetes/kustomize.ts`)
 * implements only the kustomize features `deploy/kubernetes/` uses and refuses any other, and
 * the validator (`kubernetes/schemas.ts`) refuses unknown kinds and fields: both proven below.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { IServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { buildApp, type Config, ConfigError, type Env, loadConfig } from "@realtime/service";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IHorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import type { IIngress } from "kubernetes-models/networking.k8s.io/v1/Ingress";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IService } from "kubernetes-models/v1/Service";
import { parse as parseYaml } from "yaml";
import { execForm, instructions, parseDockerfile } from "./image/dockerfile.ts";
import { type KubeObject, KustomizeError, kustomize } from "./kubernetes/kustomize.ts";
import { SchemaError, validateObject } from "./kubernetes/schemas.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const KUBE = join(ROOT, "deploy/kubernetes");
const NGINX_CONF = readFileSync(join(ROOT, "deploy/nginx/nginx.conf"), "utf8");
const ADAPTER_RULES = join(KUBE, "prometheus-adapter/rules.yaml");

/** The gauge of open streams per pod (the spec's name): what the autoscaler scales on. */
const STREAMS_GAUGE = "realtime_streams";
/**
 * Seconds a stopping pod may need past its drain window (the rest of the shutdown, with the
 * slow-step budget): operations.md's recipe, `terminationGracePeriodSeconds` ≥
 * `SHUTDOWN_DRAIN_MS`/1000 + 10.
 */
const SHUTDOWN_MARGIN_S = 10;
/** Stands in for the Secret's values; long enough for JWT_SECRET. */
const SECRET_VALUE = "kubernetes-test-secret-kubernetes-test-secret";

/** The kustomizations one applies: the base and every overlay. */
const RENDERINGS = [
  "base",
  ...readdirSync(join(KUBE, "overlays")).map((name) => `overlays/${name}`),
];

type Labels = Record<string, string> | undefined;

/** Every label of `selector` is on `labels`. */
function selects(selector: Labels, labels: Labels): boolean {
  const wanted = Object.entries(selector ?? {});
  return wanted.length > 0 && wanted.every(([k, v]) => labels?.[k] === v);
}

function ofKind<T>(objects: readonly KubeObject[], kind: string): T[] {
  return objects.filter((o) => o.kind === kind) as unknown as T[];
}

function named<T>(objects: readonly KubeObject[], kind: string, name: string): T {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(found, `${kind}/${name} is rendered`);
  return found as unknown as T;
}

/** The environment a container gets, and which of its variables come from a Secret. */
function containerEnv(objects: readonly KubeObject[], container: IContainer) {
  const env: Record<string, string> = {};
  const fromSecret = new Set<string>();
  for (const source of container.envFrom ?? []) {
    // A Secret's keys are not in the manifests: its variable names could not be checked.
    assert.ok(
      source.configMapRef && !source.secretRef && !source.prefix,
      "envFrom: ConfigMaps only",
    );
    const map = named<IConfigMap>(objects, "ConfigMap", source.configMapRef.name ?? "");
    Object.assign(env, map.data);
  }
  for (const { name, value, valueFrom } of container.env ?? []) {
    if (valueFrom?.secretKeyRef) {
      assert.ok(valueFrom.secretKeyRef.optional !== true, `${name}: the Secret's key is required`);
      env[name] = SECRET_VALUE;
      fromSecret.add(name);
    } else if (valueFrom?.configMapKeyRef) {
      const { name: mapName, key } = valueFrom.configMapKeyRef;
      const map = named<IConfigMap>(objects, "ConfigMap", mapName ?? "");
      assert.ok(map.data?.[key] !== undefined, `${name}: ConfigMap ${mapName} has ${key}`);
      env[name] = map.data[key];
    } else {
      assert.ok(valueFrom === undefined && value !== undefined, `${name}: a value or a ref`);
      env[name] = value;
    }
  }
  return { env, fromSecret };
}

/** Loads the service's config from `env`, recording every variable the config reads. */
function configOf(env: Env): {
  config: Config | null;
  error: ConfigError | null;
  read: Set<string>;
} {
  const read = new Set<string>();
  const recorder = new Proxy(env, {
    get(target, key) {
      if (typeof key === "string") read.add(key);
      return target[key as string];
    },
  });
  try {
    return { config: loadConfig(recorder), error: null, read };
  } catch (error) {
    if (error instanceof ConfigError) return { config: null, error, read };
    throw error;
  }
}

function container(deployment: IDeployment, name: string): IContainer {
  const found = deployment.spec?.template.spec?.containers.find((c) => c.name === name);
  assert.ok(found, `${deployment.metadata?.name} has a container ${name}`);
  return found;
}

/** The container port a Service's or probe's `port` (a name or a number) lands on. */
function containerPort(c: IContainer, port: string | number | undefined): number {
  if (typeof port === "number") return port;
  const found = c.ports?.find((p) => p.name === port);
  assert.ok(found, `container ${c.name} has a port named ${port}`);
  return found.containerPort;
}

/** Seconds of an nginx time: `60s`, `2m`, or a bare number of seconds. */
function nginxSeconds(value: string): number {
  const match = /^(\d+)(s|m)?$/.exec(value);
  assert.ok(match, `an nginx time: ${value}`);
  return Number(match[1]) * (match[2] === "m" ? 60 : 1);
}

/** The value of `directive` in `text` (the first one). */
function directive(text: string, name: string): string {
  const match = new RegExp(`^\\s*${name}\\s+([^;]+);`, "m").exec(text);
  assert.ok(match, `nginx.conf has ${name}`);
  return (match[1] as string).trim();
}

describe("deploy/kubernetes: the tools of this test", () => {
  const base = kustomize(join(KUBE, "base"));
  const pods = named<IDeployment>(base, "Deployment", "realtime") as unknown as KubeObject;

  it("the validator refuses an unknown kind, an unknown field, a wrong type and a missing field", () => {
    validateObject(pods);
    const typo = structuredClone(pods) as unknown as IDeployment;
    Object.assign(container(typo, "realtime"), {
      readinessprobe: { httpGet: { path: "/readyz" } },
    });
    assert.throws(
      () => validateObject(typo as unknown as KubeObject),
      (e: Error) => e instanceof SchemaError && /containers\[0\]\.readinessprobe/.test(e.message),
    );
    const misplaced = structuredClone(pods) as unknown as IDeployment;
    Object.assign(misplaced.spec as object, { terminationGracePeriodSeconds: 40 });
    assert.throws(
      () => validateObject(misplaced as unknown as KubeObject),
      /spec\.terminationGracePeriodSeconds/,
    );
    const wrongType = structuredClone(pods) as unknown as IDeployment;
    container(wrongType, "realtime").ports = [{ name: "http", containerPort: "8080" as never }];
    assert.throws(
      () => validateObject(wrongType as unknown as KubeObject),
      /containerPort must be integer/,
    );
    const noName = structuredClone(pods) as unknown as IDeployment;
    delete (container(noName, "realtime") as Partial<IContainer>).name;
    assert.throws(
      () => validateObject(noName as unknown as KubeObject),
      /containers\/0 must have required property name/,
    );
    assert.throws(
      () => validateObject({ ...pods, apiVersion: "apps/v1beta9" }),
      /unknown kind apps\/v1beta9 Deployment/,
    );
    assert.throws(
      () =>
        validateObject({ apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" } }),
      /unknown kind example\.com\/v1 Widget/,
    );
    // The CRD kinds are strict too.
    const monitor = named<KubeObject>(
      kustomize(join(KUBE, "overlays/example")),
      "ServiceMonitor",
      "realtime",
    );
    validateObject(monitor);
    assert.throws(
      () => validateObject({ ...monitor, spec: { ...(monitor.spec as object), endpoint: [] } }),
      /spec\.endpoint\b/,
    );
  });

  describe("the renderer", () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), "realtime-kustomize-"));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    /** A kustomization in a fresh directory over the real base; returns its path. */
    function overlay(name: string, body: string): string {
      const path = join(dir, name);
      mkdirSync(path);
      const base = resolve(KUBE, "base");
      writeFileSync(
        join(path, "kustomization.yaml"),
        `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ${base}\n${body}`,
      );
      return path;
    }

    it("applies what the overlays use: namespace, images, JSON 6902 patches", () => {
      const objects = kustomize(
        overlay(
          "supported",
          [
            "namespace: elsewhere",
            "images:",
            "  - name: ghcr.io/realtime/realtime",
            "    newTag: v9",
            "patches:",
            "  - target: { kind: ConfigMap, name: realtime }",
            "    patch: |-",
            "      - op: replace",
            "        path: /data/SHUTDOWN_DRAIN_MS",
            '        value: "9000"',
          ].join("\n"),
        ),
      );
      assert.ok(objects.every((o) => o.metadata.namespace === "elsewhere"));
      const deployment = named<IDeployment>(objects, "Deployment", "realtime");
      assert.equal(container(deployment, "realtime").image, "ghcr.io/realtime/realtime:v9");
      assert.equal(
        named<IConfigMap>(objects, "ConfigMap", "realtime").data?.SHUTDOWN_DRAIN_MS,
        "9000",
      );
    });

    it("refuses kustomize features it does not implement, and patches that miss", () => {
      const refused: [string, string, RegExp][] = [
        [
          "generator",
          "configMapGenerator:\n  - name: x\n    literals: [A=b]\n",
          /"configMapGenerator" is not supported/,
        ],
        ["labels", "commonLabels:\n  team: x\n", /"commonLabels" is not supported/],
        [
          "strategic",
          "patches:\n  - target: { kind: ConfigMap }\n    patch: |-\n      data:\n        A: b\n",
          /only JSON 6902 patches/,
        ],
        [
          "file-patch",
          "patches:\n  - path: patch.yaml\n    target: { kind: ConfigMap }\n",
          /patch keys path not supported/,
        ],
        [
          "missing",
          "patches:\n  - target: { kind: ConfigMap, name: nope }\n    patch: '[{op: remove, path: /data/A}]'\n",
          /matches nothing/,
        ],
        [
          "absent",
          "patches:\n  - target: { kind: ConfigMap }\n    patch: '[{op: remove, path: /data/NOT_THERE}]'\n",
          /nothing there to remove/,
        ],
        ["image", "images:\n  - name: ghcr.io/other/image\n    newTag: v1\n", /no container uses/],
      ];
      for (const [name, body, message] of refused) {
        assert.throws(
          () => kustomize(overlay(name, body)),
          (e: Error) => e instanceof KustomizeError && message.test(e.message),
          name,
        );
      }
    });
  });
});

for (const rendering of RENDERINGS) {
  describe(`deploy/kubernetes/${rendering}`, () => {
    const objects = kustomize(join(KUBE, rendering));
    const pods = named<IDeployment>(objects, "Deployment", "realtime");
    const worker = named<IDeployment>(objects, "Deployment", "realtime-worker");
    const pod = container(pods, "realtime");
    const podEnv = containerEnv(objects, pod);
    const podConfig = configOf(podEnv.env);
    const workerEnv = containerEnv(objects, container(worker, "worker"));
    const workerConfig = configOf(workerEnv.env);
    const config = podConfig.config as Config;

    it("every object is valid against its Kubernetes schema, none is unknown", () => {
      assert.ok(objects.length >= 6);
      for (const object of objects) validateObject(object);
    });

    it("sets only variables the service reads, and its Secret carries what production requires", () => {
      for (const [name, { env, fromSecret }, loaded] of [
        ["pods", podEnv, podConfig],
        ["worker", workerEnv, workerConfig],
      ] as const) {
        assert.equal(loaded.error, null, `${name}: the config loads (${loaded.error?.message})`);
        for (const variable of Object.keys(env)) {
          assert.ok(
            loaded.read.has(variable),
            `${name}: ${variable} is read by the service's config`,
          );
        }
        // Without the Secret the config is invalid, for want of exactly what the Secret holds.
        const withoutSecret = Object.fromEntries(
          Object.entries(env).filter(([variable]) => !fromSecret.has(variable)),
        );
        const { error } = configOf(withoutSecret);
        assert.ok(error, `${name}: without its Secret the config is refused`);
        for (const problem of error.problems) {
          assert.ok(
            [...fromSecret].some((variable) => problem.includes(variable)),
            `${name}: "${problem}" is about a variable the Secret provides`,
          );
        }
        assert.equal(loaded.config?.nodeEnv, "production", `${name}: NODE_ENV`);
      }
    });

    it("pods and workers share one Redis (several pods need it) and the same token key", () => {
      assert.notEqual(config.redis.mode, "embedded");
      assert.deepEqual(workerConfig.config?.redis, config.redis);
      assert.deepEqual([...workerEnv.fromSecret], [...podEnv.fromSecret]);
    });

    it("ports and probes are the ones the service listens on and serves", async () => {
      assert.equal(containerPort(pod, "http"), config.http.port, "the http port is PORT");
      assert.ok(config.http.metricsPort, "METRICS_PORT is set: /metrics off the public port");
      assert.equal(containerPort(pod, "metrics"), config.http.metricsPort, "METRICS_PORT");
      assert.equal(pod.readinessProbe?.httpGet?.path, "/readyz");
      assert.equal(pod.livenessProbe?.httpGet?.path, "/healthz");
      assert.ok(pod.startupProbe?.httpGet?.path, "a startup probe");
      // The drain shows on /readyz at once; the recipe asks for a probe period of at most 1 s.
      assert.ok((pod.readinessProbe?.periodSeconds ?? 10) <= 1, "readiness period ≤ 1 s");
      const probes = [pod.readinessProbe, pod.livenessProbe, pod.startupProbe];
      for (const probe of probes) {
        assert.equal(containerPort(pod, probe?.httpGet?.port), config.http.port, "probe port");
      }
      // The routes answer, on the app built from this very environment (embedded: no Redis here).
      const { REDIS_URL: _url, REDIS_CLUSTER_NODES: _nodes, ...local } = podEnv.env;
      const service = await buildApp(loadConfig({ ...local, LOG_LEVEL: "silent" }), {
        logger: false,
      });
      try {
        for (const probe of probes) {
          const path = probe?.httpGet?.path ?? "";
          assert.ok(
            service.app.hasRoute({ method: "GET", url: path }),
            `the app routes GET ${path}`,
          );
          const answer = await service.app.inject({ url: path });
          assert.equal(answer.statusCode, 200, `GET ${path}`);
          assert.match(
            String(answer.headers["content-type"]),
            /json/,
            `${path} is not the web app`,
          );
        }
        assert.ok(service.metricsApp, "a metrics listener");
        const metrics = await service.metricsApp.inject({ url: "/metrics" });
        assert.match(metrics.body, new RegExp(`^# TYPE ${STREAMS_GAUGE} gauge$`, "m"));
      } finally {
        await service.shutdown(0);
      }
    });

    it("the grace period covers preStop, the configured drain and the rest of the shutdown", () => {
      const drainS = Math.ceil(config.shutdown.drainMs / 1000);
      const preStop = pod.lifecycle?.preStop;
      assert.ok(preStop?.sleep && !preStop.exec && !preStop.httpGet, "preStop: a sleep action");
      const needed = preStop.sleep.seconds + drainS + SHUTDOWN_MARGIN_S;
      const grace = pods.spec?.template.spec?.terminationGracePeriodSeconds ?? 30;
      assert.ok(grace >= needed, `pods: grace ${grace} s ≥ preStop + drain + margin = ${needed} s`);
      const workerDrainS = Math.ceil((workerConfig.config as Config).shutdown.drainMs / 1000);
      const workerGrace = worker.spec?.template.spec?.terminationGracePeriodSeconds ?? 30;
      assert.ok(workerGrace >= workerDrainS + SHUTDOWN_MARGIN_S, `worker: grace ${workerGrace} s`);
      // Rolling updates: one pod more, never one fewer (the recipe).
      assert.equal(pods.spec?.strategy?.rollingUpdate?.maxUnavailable, 0);
      assert.equal(pods.spec?.strategy?.rollingUpdate?.maxSurge, 1);
    });

    it("the Service, the PodDisruptionBudget and the autoscaler select the pods, not the workers", () => {
      const podLabels = pods.spec?.template.metadata?.labels;
      const workerLabels = worker.spec?.template.metadata?.labels;
      for (const deployment of [pods, worker]) {
        const labels = deployment.spec?.template.metadata?.labels;
        assert.ok(selects(deployment.spec?.selector.matchLabels, labels), "own selector");
      }
      const svc = named<IService>(objects, "Service", "realtime");
      assert.ok(
        selects(svc.spec?.selector, podLabels) && !selects(svc.spec?.selector, workerLabels),
      );
      const http = svc.spec?.ports?.find((p) => p.name === "http");
      assert.equal(containerPort(pod, http?.targetPort), config.http.port, "Service → PORT");
      assert.ok(
        !svc.spec?.ports?.some((p) => containerPort(pod, p.targetPort) === config.http.metricsPort),
      );
      const [pdb, ...morePdbs] = ofKind<IPodDisruptionBudget>(objects, "PodDisruptionBudget");
      assert.equal(morePdbs.length, 0);
      assert.ok(pdb, "a PodDisruptionBudget");
      const pdbSelector = pdb.spec?.selector?.matchLabels;
      assert.ok(selects(pdbSelector, podLabels) && !selects(pdbSelector, workerLabels));
      assert.equal(pdb.spec?.maxUnavailable, 1);
      const hpa = named<IHorizontalPodAutoscaler>(objects, "HorizontalPodAutoscaler", "realtime");
      assert.deepEqual(hpa.spec.scaleTargetRef, {
        apiVersion: pods.apiVersion,
        kind: "Deployment",
        name: pods.metadata?.name,
      });
    });

    it("the autoscaler scales on open streams per pod (below the pod's limit) and falls back on CPU", () => {
      const hpa = named<IHorizontalPodAutoscaler>(objects, "HorizontalPodAutoscaler", "realtime");
      const streams = hpa.spec.metrics?.find((m) => m.type === "Pods");
      assert.equal(streams?.pods?.metric.name, STREAMS_GAUGE);
      assert.equal(streams?.pods?.target.type, "AverageValue");
      const target = String(streams?.pods?.target.averageValue);
      assert.match(target, /^\d+$/, "a whole number of streams");
      // While one of the fewest pods drains, the others take its streams: still under the limit.
      const min = hpa.spec.minReplicas ?? 1;
      assert.ok(min >= 2, "at least two pods, so one can drain");
      const peak = (Number(target) * min) / (min - 1);
      assert.ok(peak <= config.limits.maxConnections, `${peak} ≤ MAX_CONNECTIONS`);
      const cpu = hpa.spec.metrics?.find((m) => m.type === "Resource");
      assert.equal(cpu?.resource?.name, "cpu");
      assert.equal(cpu?.resource?.target.type, "Utilization");
      assert.ok(pod.resources?.requests?.cpu, "CPU utilisation needs a CPU request");
      // The adapter rule serves that very name, from the gauge, summed (never rate()d).
      const adapter = parseYaml(readFileSync(ADAPTER_RULES, "utf8")) as {
        rules: {
          custom: {
            seriesQuery: string;
            name: { as: string };
            metricsQuery: string;
            resources: { overrides: Record<string, { resource: string }> };
          }[];
        };
      };
      const rule = adapter.rules.custom.find((r) => r.name.as === STREAMS_GAUGE);
      assert.ok(rule, "an adapter rule for the HPA's metric");
      assert.ok(rule.seriesQuery.startsWith(`${STREAMS_GAUGE}{`));
      assert.doesNotMatch(rule.metricsQuery, /rate\(/);
      assert.deepEqual(Object.keys(rule.resources.overrides).sort(), ["namespace", "pod"]);
    });

    it("containers run unprivileged on a read-only root, with requests and a memory limit", () => {
      for (const deployment of [pods, worker]) {
        const spec = deployment.spec?.template.spec;
        assert.equal(spec?.securityContext?.runAsNonRoot, true);
        assert.ok((spec?.securityContext?.runAsUser ?? 0) > 0, "a numeric non-root user");
        assert.equal(spec?.automountServiceAccountToken, false);
        // Docker-link variables (a Service `metrics` → METRICS_PORT=tcp://…) would reach the config.
        assert.equal(spec?.enableServiceLinks, false);
        for (const c of spec?.containers ?? []) {
          assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
          assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
          assert.deepEqual(c.securityContext?.capabilities?.drop, ["ALL"]);
          const tmp = c.volumeMounts?.find((m) => m.mountPath === "/tmp");
          const volume = spec?.volumes?.find((v) => v.name === tmp?.name);
          assert.ok(volume?.emptyDir, "a writable /tmp (os.tmpdir())");
          assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory, "requests");
          assert.ok(c.resources?.limits?.memory, "a memory limit");
          assert.match(c.image ?? "", /^ghcr\.io\/realtime\/realtime:[\w.-]+$/);
        }
      }
    });

    it("the pods run the image's default command; the workers the image's `worker` command", () => {
      assert.equal(pod.command, undefined);
      assert.equal(pod.args, undefined);
      const workerContainer = container(worker, "worker");
      assert.equal(workerContainer.command, undefined, "the image's entrypoint (init) stays");
      assert.deepEqual(workerContainer.args, ["worker"]);
      // What the image does with them: its entrypoint runs container.ts under tini, CMD `pod`.
      const runtime = parseDockerfile(readFileSync(join(ROOT, "Dockerfile"), "utf8")).at(-1);
      assert.ok(runtime);
      const [entrypoint] = instructions(runtime, "ENTRYPOINT");
      const [cmd] = instructions(runtime, "CMD");
      assert.deepEqual(execForm(entrypoint?.args ?? ""), [
        "tini",
        "--",
        "node",
        "/app/apps/service/src/container.ts",
      ]);
      assert.deepEqual(execForm(cmd?.args ?? ""), ["pod"]);
      const entry = readFileSync(join(ROOT, "apps/service/src/container.ts"), "utf8");
      for (const command of ["pod", "worker"])
        assert.match(entry, new RegExp(`case "${command}":`));
      // The image's user (node:24-slim's `node`) is the uid the pods run as.
      assert.deepEqual(
        instructions(runtime, "USER").map((u) => u.args),
        ["node"],
      );
      for (const deployment of [pods, worker]) {
        const { securityContext } = deployment.spec?.template.spec ?? {};
        assert.equal(securityContext?.runAsUser, 1000, deployment.metadata?.name);
      }
    });

    const monitors = ofKind<IServiceMonitor>(objects, "ServiceMonitor");
    // Optional components: checked in the renderings that have them (the coverage test below
    // makes sure every component is in one).
    if (monitors.length > 0)
      it("the ServiceMonitor scrapes METRICS_PORT by name", () => {
        for (const monitor of monitors) {
          const services = ofKind<IService>(objects, "Service").filter((s) =>
            selects(monitor.spec.selector.matchLabels, s.metadata?.labels),
          );
          assert.equal(services.length, 1, "the ServiceMonitor selects one Service");
          const [svc] = services as [IService];
          assert.ok(selects(svc.spec?.selector, pods.spec?.template.metadata?.labels));
          for (const endpoint of monitor.spec.endpoints ?? []) {
            const port = svc.spec?.ports?.find((p) => p.name === endpoint.port);
            assert.ok(port, `the Service has the port ${endpoint.port}`);
            assert.equal(containerPort(pod, port.targetPort), config.http.metricsPort);
            assert.equal(endpoint.path ?? "/metrics", "/metrics");
          }
        }
      });

    const ingresses = ofKind<IIngress>(objects, "Ingress");
    if (ingresses.length > 0)
      it("the Ingress streams like the reference nginx", () => {
        const events = NGINX_CONF.slice(NGINX_CONF.indexOf("location = /api/events {"));
        const readTimeout = nginxSeconds(directive(events, "proxy_read_timeout"));
        assert.ok(
          readTimeout * 1000 > config.sse.heartbeatIntervalMs,
          "nginx.conf: above the heartbeat",
        );
        const expected: Record<string, string> = {
          "proxy-buffering": "off",
          "proxy-read-timeout": String(readTimeout),
          "proxy-send-timeout": String(nginxSeconds(directive(events, "proxy_send_timeout"))),
          "proxy-connect-timeout": String(
            nginxSeconds(directive(NGINX_CONF, "proxy_connect_timeout")),
          ),
          "proxy-next-upstream": directive(NGINX_CONF, "proxy_next_upstream"),
          "proxy-next-upstream-timeout": String(
            nginxSeconds(directive(NGINX_CONF, "proxy_next_upstream_timeout")),
          ),
          "proxy-body-size": directive(NGINX_CONF, "client_max_body_size"),
        };
        for (const ingress of ingresses) {
          for (const [name, value] of Object.entries(expected)) {
            assert.equal(
              ingress.metadata?.annotations?.[`nginx.ingress.kubernetes.io/${name}`],
              value,
              name,
            );
          }
          for (const path of ingress.spec?.rules?.flatMap((r) => r.http?.paths ?? []) ?? []) {
            const backend = path.backend.service;
            const svc = named<IService>(objects, "Service", backend?.name ?? "");
            const port = svc.spec?.ports?.find((p) => p.name === backend?.port?.name);
            assert.equal(containerPort(pod, port?.targetPort), config.http.port, "Ingress → PORT");
          }
        }
      });
  });
}

describe("deploy/kubernetes: coverage", () => {
  it("every component is used by an overlay, so every object is validated", () => {
    const used = new Set(
      RENDERINGS.flatMap((rendering) => {
        const dir = join(KUBE, rendering);
        const spec = parseYaml(readFileSync(join(dir, "kustomization.yaml"), "utf8")) as {
          components?: string[];
        };
        return (spec.components ?? []).map((c) => resolve(dir, c));
      }),
    );
    const components = readdirSync(join(KUBE, "components")).map((c) =>
      join(KUBE, "components", c),
    );
    assert.ok(components.length >= 2);
    for (const component of components) assert.ok(used.has(component), `${component} is used`);
  });
});
