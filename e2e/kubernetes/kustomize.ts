/**
 * Renders a kustomization under `deploy/kubernetes/` the way `kubectl kustomize` does — for the
 * features those files use, and only those: no kustomize binary can be had here, and a test
 * that silently ignored a feature it does not know would validate something other than what
 * gets applied. Anything else (a generator, a strategic-merge patch, labels transformers,
 * remote bases…) is refused by name, so using it in `deploy/` means teaching it here first.
 *
 * Supported:
 * - `Kustomization` (`kustomize.config.k8s.io/v1beta1`): `resources` (YAML files, or
 *   directories holding a Kustomization), `components`, `patches`, `namespace`, `images`.
 * - `Component` (`kustomize.config.k8s.io/v1alpha1`): `resources`, `patches`.
 * - `patches`: inline JSON 6902 (`add`, `remove`, `replace`) with a `target` of `kind` and/or
 *   `name`; a target that matches nothing is an error.
 * - `images`: `name` with `newName` and/or `newTag`, on the containers of pod templates.
 * - Order as kustomize: resources, then components, then own patches, namespace, images.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseAllDocuments, parse as parseYaml } from "yaml";

/** A Kubernetes object as rendered: plain JSON. */
export type KubeObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
};

const KUSTOMIZE_GROUP = "kustomize.config.k8s.io";
const SUPPORTED_KEYS: Record<string, readonly string[]> = {
  Kustomization: [
    "apiVersion",
    "kind",
    "resources",
    "components",
    "patches",
    "namespace",
    "images",
  ],
  Component: ["apiVersion", "kind", "resources", "patches"],
};

export class KustomizeError extends Error {
  override name = "KustomizeError";
}

/** Renders the kustomization in `dir` (a directory holding `kustomization.yaml`). */
export function kustomize(dir: string): KubeObject[] {
  return render(resolve(dir), "Kustomization", []);
}

function render(
  dir: string,
  expected: "Kustomization" | "Component",
  seen: string[],
): KubeObject[] {
  if (seen.includes(dir)) throw new KustomizeError(`cycle: ${[...seen, dir].join(" -> ")}`);
  const file = join(dir, "kustomization.yaml");
  if (!existsSync(file)) {
    // kustomization.yml and Kustomization are accepted by kustomize; not by this renderer.
    throw new KustomizeError(`${dir}: no kustomization.yaml`);
  }
  const spec = parseYaml(readFileSync(file, "utf8")) as Record<string, unknown>;
  const version = expected === "Kustomization" ? "v1beta1" : "v1alpha1";
  if (spec.kind !== expected || spec.apiVersion !== `${KUSTOMIZE_GROUP}/${version}`) {
    throw new KustomizeError(
      `${file}: expected ${KUSTOMIZE_GROUP}/${version} ${expected}, got ${String(spec.apiVersion)} ${String(spec.kind)}`,
    );
  }
  const allowed = SUPPORTED_KEYS[expected] ?? [];
  for (const key of Object.keys(spec)) {
    if (!allowed.includes(key)) {
      throw new KustomizeError(
        `${file}: kustomize feature "${key}" is not supported by this renderer`,
      );
    }
  }
  const within = [...seen, dir];

  const objects: KubeObject[] = [];
  for (const entry of list(spec.resources, file, "resources")) {
    const path = resolve(dir, str(entry, file, "resources"));
    if (!existsSync(path)) throw new KustomizeError(`${file}: resource ${path} does not exist`);
    if (statSync(path).isDirectory()) objects.push(...render(path, "Kustomization", within));
    else objects.push(...readObjects(path));
  }
  for (const entry of list(spec.components, file, "components")) {
    const path = resolve(dir, str(entry, file, "components"));
    const component = render(path, "Component", within);
    objects.push(...component);
  }
  checkUnique(objects, file);
  for (const patch of list(spec.patches, file, "patches")) applyPatch(objects, patch, file);
  if (spec.namespace !== undefined) {
    const namespace = str(spec.namespace, file, "namespace");
    for (const object of objects) object.metadata.namespace = namespace;
  }
  for (const image of list(spec.images, file, "images")) setImage(objects, image, file);
  return objects;
}

function readObjects(path: string): KubeObject[] {
  const objects: KubeObject[] = [];
  for (const document of parseAllDocuments(readFileSync(path, "utf8"))) {
    if (document.errors.length > 0) throw new KustomizeError(`${path}: ${document.errors[0]}`);
    const value = document.toJSON() as unknown;
    if (value === null) continue; // an empty document (a trailing ---)
    const object = value as Partial<KubeObject>;
    if (
      typeof object !== "object" ||
      typeof object.apiVersion !== "string" ||
      typeof object.kind !== "string" ||
      typeof object.metadata?.name !== "string"
    ) {
      throw new KustomizeError(
        `${path}: not a Kubernetes object (apiVersion, kind, metadata.name)`,
      );
    }
    objects.push(object as KubeObject);
  }
  return objects;
}

function checkUnique(objects: readonly KubeObject[], file: string): void {
  const ids = new Set<string>();
  for (const { apiVersion, kind, metadata } of objects) {
    const id = `${apiVersion}/${kind}/${metadata.namespace ?? ""}/${metadata.name}`;
    if (ids.has(id)) throw new KustomizeError(`${file}: ${id} is defined twice`);
    ids.add(id);
  }
}

function applyPatch(objects: KubeObject[], entry: unknown, file: string): void {
  const { target, patch, ...rest } = entry as { target?: unknown; patch?: unknown };
  if (Object.keys(rest).length > 0) {
    throw new KustomizeError(`${file}: patch keys ${Object.keys(rest).join(", ")} not supported`);
  }
  const { kind, name, ...other } = (target ?? {}) as { kind?: string; name?: string };
  if (target === undefined || Object.keys(other).length > 0 || (!kind && !name)) {
    throw new KustomizeError(`${file}: a patch needs a target of kind and/or name, nothing else`);
  }
  const operations = parseYaml(str(patch, file, "patches[].patch")) as unknown;
  if (!Array.isArray(operations)) {
    throw new KustomizeError(
      `${file}: only JSON 6902 patches (a list of operations) are supported`,
    );
  }
  const matched = objects.filter(
    (o) =>
      (kind === undefined || o.kind === kind) && (name === undefined || o.metadata.name === name),
  );
  if (matched.length === 0) {
    throw new KustomizeError(`${file}: patch target ${kind ?? "*"}/${name ?? "*"} matches nothing`);
  }
  for (const object of matched) {
    for (const operation of operations) applyOperation(object, operation as Operation, file);
  }
}

type Operation = { op: string; path: string; value?: unknown; [key: string]: unknown };

function applyOperation(object: KubeObject, operation: Operation, file: string): void {
  const { op, path, value, ...rest } = operation;
  if (Object.keys(rest).length > 0 || typeof path !== "string" || !path.startsWith("/")) {
    throw new KustomizeError(`${file}: unsupported patch operation ${JSON.stringify(operation)}`);
  }
  const keys = path
    .slice(1)
    .split("/")
    .map((k) => k.replaceAll("~1", "/").replaceAll("~0", "~"));
  const last = keys.pop() as string;
  let parent: unknown = object;
  for (const key of keys) {
    parent = (parent as Record<string, unknown> | undefined)?.[key];
    if (parent === null || typeof parent !== "object") {
      throw new KustomizeError(
        `${file}: ${op} ${path}: no such path in ${object.kind}/${object.metadata.name}`,
      );
    }
  }
  const done = Array.isArray(parent)
    ? arrayOperation(parent, op, last, value)
    : objectOperation(parent as Record<string, unknown>, op, last, value);
  if (!done) {
    throw new KustomizeError(`${file}: ${op} ${path}: unsupported, or nothing there to ${op}`);
  }
}

function arrayOperation(array: unknown[], op: string, last: string, value: unknown): boolean {
  const index = last === "-" && op === "add" ? array.length : Number(last);
  if (!Number.isInteger(index) || index < 0 || index > array.length) return false;
  if (op === "add") array.splice(index, 0, value);
  else if (index === array.length) return false;
  else if (op === "replace") array[index] = value;
  else if (op === "remove") array.splice(index, 1);
  else return false;
  return true;
}

function objectOperation(
  object: Record<string, unknown>,
  op: string,
  key: string,
  value: unknown,
): boolean {
  if (op === "add") object[key] = value;
  else if (!(key in object)) return false;
  else if (op === "replace") object[key] = value;
  else if (op === "remove") delete object[key];
  else return false;
  return true;
}

function setImage(objects: KubeObject[], entry: unknown, file: string): void {
  const { name, newName, newTag, ...rest } = entry as Record<string, string | undefined>;
  if (Object.keys(rest).length > 0 || !name || (!newName && !newTag)) {
    throw new KustomizeError(`${file}: images entries take name with newName and/or newTag only`);
  }
  let used = false;
  for (const object of objects) {
    const pod = (object.spec as { template?: { spec?: Record<string, unknown> } } | undefined)
      ?.template?.spec;
    for (const field of ["containers", "initContainers"]) {
      for (const container of (pod?.[field] as { image?: string }[] | undefined) ?? []) {
        const image = container.image ?? "";
        // The name ends before `@digest`, or before a `:tag` after the last slash (a registry
        // may have a port: `host:5000/image:tag`).
        const at = image.indexOf("@");
        const colon = image.lastIndexOf(":");
        const end = at >= 0 ? at : colon > image.lastIndexOf("/") ? colon : image.length;
        const bare = image.slice(0, end);
        if (bare !== name) continue;
        const tag = image.slice(end);
        container.image = `${newName ?? name}${newTag === undefined ? tag : `:${newTag}`}`;
        used = true;
      }
    }
  }
  if (!used) throw new KustomizeError(`${file}: images: no container uses ${name}`);
}

function list(value: unknown, file: string, key: string): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new KustomizeError(`${file}: ${key} must be a list`);
  return value;
}

function str(value: unknown, file: string, key: string): string {
  if (typeof value !== "string") throw new KustomizeError(`${file}: ${key} must be a string`);
  return value;
}
