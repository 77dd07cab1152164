/**
 * Validates rendered objects against the Kubernetes schemas, strictly: with the OpenAPI
 * validators of `kubernetes-models` (core kinds) and `@kubernetes-models/prometheus-operator`
 * (ServiceMonitor). An unknown apiVersion/kind is an error, and so is an unknown field.
 *
 * The generated validators accept fields their schema does not list (the API server drops
 * those silently — a typo such as `readinessprobe` would leave a pod without its probe). So
 * the object is validated through a proxy that records every property the validator reads:
 * the validator reads each field its schema knows (to check it), and every key of a map
 * (labels, annotations, `data`) as it checks the values. A key it never read is a field the
 * schema does not have.
 */
import * as prometheusOperator from "@kubernetes-models/prometheus-operator";
import * as kubernetes from "kubernetes-models";
import type { KubeObject } from "./kustomize.ts";

type ModelClass = {
  apiVersion: string;
  kind: string;
  prototype: { validate(this: unknown): void };
};

/** apiVersion + kind → the model class whose `validate` checks it. */
const MODELS = new Map<string, ModelClass>();
function collect(namespace: object): void {
  for (const value of Object.values(namespace)) {
    if (typeof value === "function") {
      const model = value as unknown as ModelClass;
      if (typeof model.apiVersion === "string" && typeof model.kind === "string") {
        MODELS.set(`${model.apiVersion} ${model.kind}`, model);
      }
    } else if (value !== null && typeof value === "object") {
      collect(value);
    }
  }
}
collect(kubernetes);
collect(prometheusOperator);

export class SchemaError extends Error {
  override name = "SchemaError";
}

/** Throws a {@link SchemaError} naming what is wrong with `object`, if anything. */
export function validateObject(object: KubeObject): void {
  const id = `${object.apiVersion} ${object.kind}`;
  const model = MODELS.get(id);
  const where = `${object.kind}/${object.metadata?.name}`;
  if (!model) throw new SchemaError(`${where}: unknown kind ${id}`);
  const read = new WeakMap<object, Set<PropertyKey>>();
  try {
    model.prototype.validate.call(track(object, read));
  } catch (error) {
    throw new SchemaError(`${where}: ${(error as Error).message}`);
  }
  const unknown = unread(object, read, "");
  if (unknown.length > 0) {
    throw new SchemaError(`${where}: fields not in the ${id} schema: ${unknown.join(", ")}`);
  }
}

function track<T>(value: T, read: WeakMap<object, Set<PropertyKey>>): T {
  if (value === null || typeof value !== "object") return value;
  const keys = new Set<PropertyKey>();
  read.set(value, keys);
  return new Proxy(value, {
    get(target, key, receiver) {
      keys.add(key);
      return track(Reflect.get(target, key, receiver), read);
    },
  });
}

function unread(value: unknown, read: WeakMap<object, Set<PropertyKey>>, path: string): string[] {
  if (value === null || typeof value !== "object") return [];
  if (Array.isArray(value)) return value.flatMap((item, i) => unread(item, read, `${path}[${i}]`));
  const keys = read.get(value);
  // Not reached by the validator at all: its parent's field was reported already.
  if (!keys) return [];
  return Object.entries(value).flatMap(([key, inner]) =>
    keys.has(key) ? unread(inner, read, `${path}.${key}`) : [`${path}.${key}`.slice(1)],
  );
}
