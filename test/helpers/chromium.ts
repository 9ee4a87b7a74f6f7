// Test helper: headless Chromium (Debian's `chromium` package) driven over the DevTools
// protocol with `ws`, for tests of what a browser does with the HTTP API: CORS, signed URLs,
// images shown from a blob URL.
//
//   const browser = await startChromium();
//   const page = await browser.newPage();
//   await page.navigate('http://127.0.0.1:1234/page.html');
//   const result = await page.waitFor<string>('document.title === "done" && document.body.textContent');
//   const png = await page.screenshot();
//   await browser.close();
//
// Owns: the Chromium processes it starts and their temp profiles (--user-data-dir).
// Invariants:
// - Chromium runs in a process group of its own (detached), and is stopped by signalling that
//   group by its PID: the browser and every child it forked (renderer, GPU, zygote) go, and
//   nothing is ever killed by name. stopAllChromium() in an `after` stops what is left.
// - Every wait is bounded (start, each protocol call, waitFor, stop) and a timeout names what
//   it waited for; a protocol error rejects the call that caused it.
// - As root (CI containers) Chromium needs --no-sandbox; it is always given here, since these
//   tests load only pages they serve themselves.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WebSocket } from 'ws';

const START_MS = 30_000;
const CALL_MS = 15_000;
const STOP_MS = 10_000;
/** Where Debian's package puts the real binary (/usr/bin/chromium is a shell wrapper). */
const CANDIDATES = ['/usr/lib/chromium/chromium', '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/** The Chromium binary: $CHROMIUM_BIN, else the first of the usual places; null if none. */
export function chromiumPath(): string | null {
  const fromEnv = process.env.CHROMIUM_BIN;
  if (fromEnv !== undefined && fromEnv !== '') return fs.existsSync(fromEnv) ? fromEnv : null;
  return CANDIDATES.find((p) => fs.existsSync(p)) ?? null;
}

export interface Page {
  /** Loads a URL and waits for its load event. */
  navigate(url: string, timeoutMs?: number): Promise<void>;
  /** Evaluates an expression in the page (promises awaited); answers its value, JSON-copied. */
  evaluate<T>(expression: string, timeoutMs?: number): Promise<T>;
  /** Polls an expression until it is truthy; answers that value. */
  waitFor<T>(expression: string, timeoutMs?: number): Promise<T>;
  /** A PNG of the viewport. */
  screenshot(timeoutMs?: number): Promise<Buffer>;
  close(): Promise<void>;
}

export interface Chromium {
  readonly pid: number;
  newPage(width?: number, height?: number): Promise<Page>;
  /** What Chromium wrote on stderr (bounded), for failure messages. */
  stderr(): string;
  close(): Promise<void>;
}

const running = new Set<Chromium>();

export async function startChromium(options: { startMs?: number; args?: string[] } = {}): Promise<Chromium> {
  const bin = chromiumPath();
  if (bin === null) throw new Error('headless Chromium is not installed: apt-get install chromium (or set $CHROMIUM_BIN)');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'brisedb-chromium-'));
  const child = spawn(bin, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check',
    '--disable-extensions', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--mute-audio',
    '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0', `--user-data-dir=${profile}`,
    ...(options.args ?? []), 'about:blank',
  ], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString('utf8');
    if (err.length > 64 * 1024) err = err.slice(-32 * 1024);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = (): Promise<void> => stopGroup(child, exited, profile);
  try {
    const url = await devToolsUrl(child, () => err, options.startMs ?? START_MS);
    const cdp = await Cdp.connect(url);
    const browser: Chromium = {
      pid: child.pid ?? -1,
      stderr: () => err,
      newPage: (width = 800, height = 600) => openPage(cdp, width, height),
      close: async () => {
        running.delete(browser);
        cdp.close();
        await stop();
      },
    };
    running.add(browser);
    return browser;
  } catch (e) {
    await stop();
    throw e;
  }
}

/** For `after`: closes every browser still running. */
export async function stopAllChromium(): Promise<void> {
  for (const b of [...running]) await b.close().catch(() => undefined);
}

// ---- start and stop ----------------------------------------------------------------------

/** Chromium prints `DevTools listening on ws://...` once its debugging port is bound. */
async function devToolsUrl(child: ChildProcess, stderr: () => string, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = /DevTools listening on (ws:\/\/\S+)/.exec(stderr());
    if (m !== null) return m[1]!;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`Chromium exited before listening: ${stderr().slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`Chromium did not open its DevTools port within ${ms} ms: ${stderr().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** SIGTERM to the group (our child's PID), SIGKILL past the bound; then the profile goes. */
async function stopGroup(child: ChildProcess, exited: Promise<void>, profile: string): Promise<void> {
  const signal = (s: NodeJS.Signals): void => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, s);
    } catch {
      // the group is gone already
    }
  };
  if (child.exitCode === null && child.signalCode === null) {
    signal('SIGTERM');
    const late = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), STOP_MS))]);
    if (late) {
      signal('SIGKILL');
      await Promise.race([exited, new Promise((r) => setTimeout(r, STOP_MS))]);
    }
  }
  // Renderers may outlive the browser by a moment: a group-wide SIGKILL leaves none behind.
  signal('SIGKILL');
  fs.rmSync(profile, { recursive: true, force: true, maxRetries: 3 });
}

// ---- the DevTools protocol -----------------------------------------------------------------

type Json = Record<string, unknown>;

/** One browser-level DevTools connection; pages are flat sessions on it. */
class Cdp {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: Json) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly listeners = new Set<(method: string, params: Json, sessionId: string | undefined) => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => this.onMessage(String(data)));
    ws.on('close', () => {
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error('the DevTools connection closed'));
      }
      this.pending.clear();
    });
  }

  static connect(url: string): Promise<Cdp> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { maxPayload: 256 * 1024 * 1024 });
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`no DevTools connection to ${url} within ${CALL_MS} ms`));
      }, CALL_MS);
      ws.once('open', () => {
        clearTimeout(timer);
        resolve(new Cdp(ws));
      });
      ws.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  call(method: string, params: Json = {}, sessionId?: string, ms = CALL_MS): Promise<Json> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`DevTools ${method} got no answer within ${ms} ms`));
      }, ms);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ id, method, params, ...(sessionId === undefined ? {} : { sessionId }) }));
    });
  }

  /** Resolves on the first event of that name (in that session) within ms. */
  event(method: string, sessionId: string, ms: number): Promise<Json> {
    return new Promise((resolve, reject) => {
      const listener = (m: string, params: Json, s: string | undefined): void => {
        if (m !== method || s !== sessionId) return;
        clearTimeout(timer);
        this.listeners.delete(listener);
        resolve(params);
      };
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        reject(new Error(`no DevTools ${method} within ${ms} ms`));
      }, ms);
      this.listeners.add(listener);
    });
  }

  close(): void {
    this.ws.close();
  }

  private onMessage(text: string): void {
    const msg = JSON.parse(text) as { id?: number; result?: Json; error?: { message: string }; method?: string; params?: Json; sessionId?: string };
    if (msg.id !== undefined) {
      const p = this.pending.get(msg.id);
      if (p === undefined) return;
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.error !== undefined) p.reject(new Error(`DevTools: ${msg.error.message}`));
      else p.resolve(msg.result ?? {});
      return;
    }
    if (msg.method !== undefined) for (const l of [...this.listeners]) l(msg.method, msg.params ?? {}, msg.sessionId);
  }
}

async function openPage(cdp: Cdp, width: number, height: number): Promise<Page> {
  const { targetId } = (await cdp.call('Target.createTarget', { url: 'about:blank' })) as { targetId: string };
  const { sessionId } = (await cdp.call('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
  await cdp.call('Page.enable', {}, sessionId);
  await cdp.call('Runtime.enable', {}, sessionId);
  await cdp.call('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false }, sessionId);
  const evaluate = async <T>(expression: string, ms = CALL_MS): Promise<T> => {
    const r = (await cdp.call('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, sessionId, ms)) as {
      result: { value?: unknown };
      exceptionDetails?: { text?: string; exception?: { description?: string } };
    };
    if (r.exceptionDetails !== undefined) throw new Error(`in the page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text ?? 'an exception'}`);
    return r.result.value as T;
  };
  return {
    async navigate(url, ms = CALL_MS) {
      const loaded = cdp.event('Page.loadEventFired', sessionId, ms);
      // A navigation that fails never fires load: its waiter must not reject unheard later.
      loaded.catch(() => undefined);
      const r = (await cdp.call('Page.navigate', { url }, sessionId, ms)) as { errorText?: string };
      if (r.errorText !== undefined) throw new Error(`cannot load ${url}: ${r.errorText}`);
      await loaded;
    },
    evaluate,
    async waitFor<T>(expression: string, ms = CALL_MS): Promise<T> {
      const deadline = Date.now() + ms;
      for (;;) {
        const v = await evaluate<T>(expression, ms);
        if (v) return v;
        if (Date.now() > deadline) throw new Error(`the page never made ${expression} true within ${ms} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async screenshot(ms = CALL_MS) {
      const { data } = (await cdp.call('Page.captureScreenshot', { format: 'png' }, sessionId, ms)) as { data: string };
      return Buffer.from(data, 'base64');
    },
    async close() {
      await cdp.call('Target.closeTarget', { targetId }).catch(() => undefined);
    },
  };
}
