// Runs every compiled test file with Node's own test runner. Node 20's `node --test` takes
// files, not globs, so the list is collected here. Pass a substring to run only matching files.
//
// A failing test must end as a failure, never as a hang:
// - every test has a timeout (--test-timeout; a test may set a shorter or longer one itself);
// - --test-force-exit ends a file once its tests are done, even if a leaked handle (a worker,
//   a socket, a timer) would keep it alive;
// - the whole run has a deadline: past it the runner and everything it started are killed and
//   the run fails, naming the deadline.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

const roots = ['dist/test', 'dist/property-tests'];
const filter = process.argv[2];
/** Default per test (ms): a test that needs longer says so in its own options. */
const TEST_TIMEOUT_MS = Number(process.env.TEST_TIMEOUT_MS ?? 5 * 60_000);
/** The whole run (ms); CI allows 20 minutes for everything. */
const RUN_DEADLINE_MS = Number(process.env.TEST_RUN_DEADLINE_MS ?? 17 * 60_000);

function collect(dir) {
  let out = [];
  let names = [];
  try { names = readdirSync(dir); } catch { return out; }
  for (const name of names.sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out = out.concat(collect(path));
    else if (name.endsWith('.test.js') && (!filter || path.includes(filter))) out.push(path);
  }
  return out;
}

const files = roots.flatMap(collect);
if (files.length === 0) {
  console.error('no test files found under', roots.join(', '));
  process.exit(1);
}
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
const args = ['--test', `--test-concurrency=${concurrency}`, `--test-timeout=${TEST_TIMEOUT_MS}`, '--test-force-exit', ...files];
// Its own process group, so the deadline can kill the runner and every file it spawned.
const child = spawn(process.execPath, args, { stdio: 'inherit', detached: true });
const deadline = setTimeout(() => {
  console.error(`\nthe test run passed its deadline of ${RUN_DEADLINE_MS / 60_000} min: killing it (a hung test?)`);
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}, RUN_DEADLINE_MS);
child.on('exit', (code, signal) => {
  clearTimeout(deadline);
  process.exit(code ?? (signal ? 1 : 0));
});
