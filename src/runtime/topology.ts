// The topology: which actors exist, what each depends on, who talks to whom. Declared in one
// place (DESIGN §1) and checked here before any thread starts, so a typo in a peer name is an
// error at start naming it, not a request that hangs at run time.
// Also owns the messages between the supervisor and an actor's runtime on the worker's own
// port (start-up handshake, re-wiring, shutdown): a closed union, like every protocol.
// Invariants: names are unique and not 'main'; every dependsOn/talksTo name exists; edges are
// symmetric; startOrder puts every actor after all it depends on, or throws naming a cycle.
import { StoreError, type WireError } from './errors.js';
import type { InvariantMode, ProtocolId } from './actor.js';
import type { PortLike } from './port.js';

/** The main thread's name in talksTo. */
export const MAIN = 'main';
export const MAX_ACTORS = 256;
const MAX_NAME = 64;

export interface RestartPolicy {
  maxRestarts: number;
  withinMs: number;
}

/** OTP's default intensity: 5 restarts in 10 s, then give up. */
export const DEFAULT_RESTART: RestartPolicy = { maxRestarts: 5, withinMs: 10_000 };

export interface ActorSpec {
  name: string;
  /** The compiled actor file, e.g. new URL('./index_actor.js', import.meta.url); its default export is the factory. */
  module: URL;
  /** The protocol the actor must speak (checked at its start-up handshake). */
  protocol?: ProtocolId;
  /** Structured-cloned into the worker. */
  config: unknown;
  /** Started (and READY) before this one; stopped after it. */
  dependsOn?: string[];
  /** Peers, edges symmetric; 'main' = the main thread (Supervisor.peer). */
  talksTo?: string[];
  restart?: RestartPolicy;
}

/** Topological order of dependsOn; ties keep the order of `specs`. A cycle is an error naming it. */
export function startOrder(specs: ActorSpec[]): string[] {
  const byName = indexSpecs(specs);
  const order: string[] = [];
  const mark = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, path: string[]): void => {
    const m = mark.get(name);
    if (m === 'done') return;
    if (m === 'visiting') {
      const cycle = [...path.slice(path.indexOf(name)), name];
      throw new StoreError('BAD_ARGUMENT', `dependency cycle: ${cycle.join(' -> ')}`);
    }
    mark.set(name, 'visiting');
    for (const dep of byName.get(name)?.dependsOn ?? []) visit(dep, [...path, name]);
    mark.set(name, 'done');
    order.push(name);
  };
  for (const spec of specs) visit(spec.name, []);
  return order;
}

/** Each actor's neighbours (actors only, symmetric closure of talksTo). */
export function neighbours(specs: ActorSpec[]): Map<string, string[]> {
  indexSpecs(specs);
  const out = new Map<string, Set<string>>(specs.map((s) => [s.name, new Set<string>()]));
  for (const spec of specs) {
    for (const other of spec.talksTo ?? []) {
      if (other === MAIN || other === spec.name) continue;
      out.get(spec.name)?.add(other);
      out.get(other)?.add(spec.name);
    }
  }
  return new Map([...out].map(([name, set]) => [name, [...set].sort()]));
}

export function talksToMain(spec: ActorSpec): boolean {
  return (spec.talksTo ?? []).includes(MAIN);
}

/** Validates names and references; returns the specs by name. */
export function indexSpecs(specs: ActorSpec[]): Map<string, ActorSpec> {
  if (specs.length > MAX_ACTORS) throw bad(`${specs.length} actors (limit ${MAX_ACTORS})`);
  const byName = new Map<string, ActorSpec>();
  for (const spec of specs) {
    const name = spec.name;
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME) {
      throw bad(`actor name must be 1..${MAX_NAME} characters, got ${JSON.stringify(name)}`);
    }
    if (name === MAIN) throw bad(`'${MAIN}' is the main thread, not an actor name`);
    if (byName.has(name)) throw bad(`two actors are named ${name}`);
    if (!(spec.module instanceof URL)) throw bad(`actor ${name}: module must be a URL`);
    byName.set(name, spec);
  }
  for (const spec of specs) {
    for (const dep of spec.dependsOn ?? []) {
      if (!byName.has(dep)) throw bad(`actor ${spec.name} depends on unknown actor ${dep}`);
    }
    for (const peer of spec.talksTo ?? []) {
      if (peer !== MAIN && !byName.has(peer)) throw bad(`actor ${spec.name} talks to unknown actor ${peer}`);
    }
    const r = spec.restart;
    if (r && !(Number.isInteger(r.maxRestarts) && r.maxRestarts >= 0 && r.withinMs > 0)) {
      throw bad(`actor ${spec.name}: restart needs maxRestarts >= 0 and withinMs > 0`);
    }
  }
  return byName;
}

function bad(message: string): StoreError {
  return new StoreError('BAD_ARGUMENT', message);
}

// ---- supervisor <-> actor runtime, on the worker's own port (structured clone: ports travel) ----

export interface InitMessage {
  t: 'init';
  name: string;
  /** The module whose default export is the actor's factory (a URL's href). */
  module: string;
  config: unknown;
  /** One port per neighbour; null when that neighbour is not running (yet). */
  peers: Record<string, PortLike | null>;
  main: PortLike;
  control: PortLike;
  /** What the wiring expects the actor to speak; absent: not checked. */
  protocol?: ProtocolId;
  invariants: InvariantMode;
}

export type SupervisorMessage =
  | InitMessage
  /** The neighbour `peer` (re)started: talk to it on this port from now on. */
  | { t: 'rewire'; peer: string; port: PortLike }
  /** The neighbour `peer` died or stopped: fail what waits on it, refuse new requests. */
  | { t: 'peer-down'; peer: string; message: string }
  /** Finish in-flight requests, run the stop hook, exit 0. */
  | { t: 'shutdown' }
  /** Crash now, as a bug would: an uncaught error in the actor's thread (fault injection). */
  | { t: 'crash' };

export type ActorMessage = { t: 'ready'; protocol?: ProtocolId } | { t: 'init-failed'; error: WireError };
