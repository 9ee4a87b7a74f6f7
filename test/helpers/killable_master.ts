// Test-only program: a master (runMaster) in a child process whose actors the parent test can
// kill, over the IPC channel. Used where killing an actor may take the whole process down (a
// test process must not abort with it): `node dist/test/helpers/killable_master.js <flags>`,
// spawned with stdio 'ipc'. The flags are the master's own (cmd/master.js), parsed the same way.
// Owns: nothing but this process's master. It exits when the parent goes (IPC disconnect), so
// a failed test leaves no orphan.
// Protocol (parent → child): {t:'kill', name} · {t:'status'} · {t:'address', name} · {t:'stop'}.
// (child → parent): {t:'listening', tcpPort, httpPort} once; {t:'event', kind, name, ...} for
// each supervisor event; {t:'reply', id, ...} answering a request carrying `id`.
import { parseMasterArgs } from '../../src/master/config.js';
import { createLogger } from '../../src/master/log.js';
import { runMaster } from '../../src/master/master.js';

export type ParentToChild =
  | { t: 'kill'; id: number; name: string }
  | { t: 'status'; id: number }
  | { t: 'address'; id: number; name: string }
  | { t: 'stop'; id: number };

export type ChildToParent =
  | { t: 'listening'; tcpPort: number; httpPort: number | null }
  | { t: 'event'; kind: 'actor-exit' | 'actor-restart' | 'actor-given-up'; name: string; at: number }
  | { t: 'reply'; id: number; ok: boolean; value?: unknown; error?: string };

function send(msg: ChildToParent): void {
  process.send?.(msg);
}

async function main(): Promise<void> {
  const parsed = parseMasterArgs(process.argv.slice(2), {});
  if (!('config' in parsed)) throw new Error(`bad flags: ${JSON.stringify(parsed)}`);
  const master = await runMaster(parsed.config, createLogger('silent'));
  const supervisor = master.supervisor;
  if (supervisor === undefined) throw new Error('runMaster does not expose its supervisor');
  for (const kind of ['actor-exit', 'actor-restart', 'actor-given-up'] as const) {
    supervisor.on(kind, (e: { name: string }) => send({ t: 'event', kind, name: e.name, at: Date.now() }));
  }
  const answer = async (msg: ParentToChild): Promise<unknown> => {
    switch (msg.t) {
      case 'kill':
        return supervisor.kill(msg.name);
      case 'status':
        return supervisor.status();
      case 'address':
        return supervisor.control<{ address(): { host: string; port: number } }>(msg.name).address();
      case 'stop':
        await master.stop();
        setImmediate(() => process.exit(0));
        return null;
    }
  };
  process.on('message', (msg: ParentToChild) => {
    answer(msg).then(
      (value) => send({ t: 'reply', id: msg.id, ok: true, value }),
      (err: unknown) => send({ t: 'reply', id: msg.id, ok: false, error: String(err) }),
    );
  });
  process.on('disconnect', () => process.exit(0));
  send({ t: 'listening', tcpPort: master.tcpPort, httpPort: master.httpPort });
}

main().catch((err: unknown) => {
  process.stderr.write(`killable_master: ${String(err)}\n`);
  process.exit(1);
});
