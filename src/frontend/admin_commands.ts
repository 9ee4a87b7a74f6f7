// Server-wide commands that reach the data: PUBLISH and PUBSUB introspection, TIME, SAVE /
// BGSAVE / LASTSAVE (for a store that is always durable: a SAVE checkpoints the index, so the
// next start replays less WAL), FUNCTION FLUSH (a no-op: there are no functions; harnesses
// written for Redis send it at start), COMPACT and VOLINFO.
import type { Database } from '../db/api.js';
import { NULL_BULK, OK, array, bulk, integer, simple, type Reply } from '../protocol/reply.js';
import { fail, optionOf, type Context, type Handler } from './command_args.js';

/** When each database last finished a SAVE or BGSAVE (LASTSAVE), in Unix seconds. */
const lastSaves = new WeakMap<Database, number>();
const STARTED_AT = Math.floor(Date.now() / 1000);

function needDb({ db, spec }: Context): Database {
  if (db === undefined) fail(`ERR '${spec.name}' needs the database, and this session has none`);
  return db;
}

async function publishCommand({ session, argv }: Context): Promise<Reply> {
  return integer(await session.publish(argv[1]!, argv[2]!));
}

/** SPUBLISH: to the subscribers of a shard channel (SSUBSCRIBE), a namespace of its own. */
async function spublishCommand({ session, argv }: Context): Promise<Reply> {
  return integer(await session.publish(argv[1]!, argv[2]!, true));
}

const PUBSUB_HELP = [
  'PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:',
  'CHANNELS [<pattern>]',
  "    Return the currently active channels matching a <pattern> (default: '*').",
  'NUMPAT',
  '    Return number of subscriptions to patterns.',
  'NUMSUB [<channel> ...]',
  '    Return the number of subscribers for the specified channels, excluding',
  '    pattern subscriptions(default: no channels).',
  'SHARDCHANNELS [<pattern>]',
  '    Return the currently active shard level channels matching a <pattern> (default: \'*\').',
  'SHARDNUMSUB [<shardchannel> ...]',
  '    Return the number of subscribers for the specified shard level channel(s)',
  'HELP',
  '    Prints this help.',
];

/** Arity of each PUBSUB subcommand, Redis style (negative: at least). */
const PUBSUB_ARITY: Readonly<Record<string, number>> = { channels: -2, numsub: -2, numpat: 2, shardchannels: -2, shardnumsub: -2, help: 2 };

/** PUBSUB CHANNELS | NUMSUB | NUMPAT | SHARDCHANNELS | SHARDNUMSUB | HELP. */
async function pubsubCommand({ session, argv }: Context): Promise<Reply> {
  const sub = optionOf(argv[1]!);
  const arity = PUBSUB_ARITY[sub];
  if (arity === undefined) fail(`ERR unknown subcommand '${argv[1]!.toString('utf8')}'. Try PUBSUB HELP.`);
  if (arity > 0 ? argv.length !== arity : argv.length < -arity) fail(`ERR wrong number of arguments for 'pubsub|${sub}' command`);
  // Past the table's arity, Redis' own check inside the command words it differently.
  if (sub.endsWith('channels') && argv.length > 3) {
    fail(`ERR unknown subcommand or wrong number of arguments for '${argv[1]!.toString('utf8')}'. Try PUBSUB HELP.`);
  }
  switch (sub) {
    case 'channels':
    case 'shardchannels':
      return array((await session.pubsubChannels(argv[2], sub === 'shardchannels')).map((c) => bulk(c)));
    case 'numsub':
    case 'shardnumsub': {
      const counts = await session.pubsubNumsub(argv.slice(2), sub === 'shardnumsub');
      return array(argv.slice(2).flatMap((c, i) => [bulk(c), integer(counts[i]!)]));
    }
    case 'numpat':
      return integer(await session.pubsubNumpat());
    default:
      return array(PUBSUB_HELP.map((l) => simple(l)));
  }
}

/** TIME: [Unix seconds, microseconds], as bulk strings. */
async function timeCommand(): Promise<Reply> {
  const us = BigInt(Math.floor((performance.timeOrigin + performance.now()) * 1000));
  return array([bulk(String(us / 1_000_000n)), bulk(String(us % 1_000_000n))]);
}

/** SAVE: every write is already durable; this checkpoints the index (a shorter replay at start). */
async function saveCommand(ctx: Context): Promise<Reply> {
  const db = needDb(ctx);
  await db.checkpoint();
  lastSaves.set(db, Math.floor(Date.now() / 1000));
  return OK;
}

/** BGSAVE [SCHEDULE]: the checkpoint in the background; LASTSAVE moves when it is done. */
async function bgsaveCommand(ctx: Context): Promise<Reply> {
  const db = needDb(ctx);
  if (ctx.argv.length > 2 || (ctx.argv.length === 2 && optionOf(ctx.argv[1]!) !== 'schedule')) fail('ERR syntax error');
  void db.checkpoint().then(
    () => lastSaves.set(db, Math.floor(Date.now() / 1000)),
    () => undefined, // LASTSAVE does not move: the caller polling it sees the save did not happen
  );
  return simple('Background saving started');
}

async function lastsaveCommand({ db }: Context): Promise<Reply> {
  return integer((db !== undefined ? lastSaves.get(db) : undefined) ?? STARTED_AT);
}

/** FUNCTION FLUSH and LIST answer as a Redis without functions; the rest is unknown here. */
async function functionCommand({ argv }: Context): Promise<Reply> {
  const sub = optionOf(argv[1]!);
  if (sub === 'flush') {
    if (argv.length > 3 || (argv.length === 3 && !['sync', 'async'].includes(optionOf(argv[2]!)))) fail('ERR syntax error');
    return OK;
  }
  if (sub === 'list') return array([]);
  fail(`ERR unknown subcommand '${argv[1]!.toString('utf8')}'. Try FUNCTION HELP.`);
}

async function compactCommand(ctx: Context): Promise<Reply> {
  await needDb(ctx).compact();
  return OK;
}

/** VACUUM [volume]: answers, when done, one flat field/value array per volume vacuumed. */
async function vacuumCommand(ctx: Context): Promise<Reply> {
  const { argv } = ctx;
  if (argv.length > 2) fail("ERR wrong number of arguments for 'vacuum' command");
  let volume: number | undefined;
  if (argv.length === 2) {
    const text = argv[1]!.toString('utf8');
    volume = Number(text);
    if (!/^[0-9]{1,15}$/.test(text) || !Number.isSafeInteger(volume)) fail('ERR volume must be a volume id (VOLINFO lists them)');
  }
  const reports = await needDb(ctx).vacuum(volume);
  return array(reports.map((r) => array([
    bulk('volume'), integer(r.volume), bulk('moved'), integer(r.moved), bulk('copied_bytes'), integer(r.copiedBytes),
    bulk('changed'), integer(r.changed), bulk('expired'), integer(r.expired), bulk('freed_bytes'), integer(r.freedBytes),
    bulk('removed'), integer(r.removed ? 1 : 0), bulk('duration_ms'), integer(r.durationMs), bulk('errors'), array(r.errors.map((e) => bulk(e))),
  ])));
}

/**
 * Each volume as [id, drive, size in bytes, volume group, garbage bytes, live bytes] (garbage: what
 * a VACUUM gives back, counted by the index: docs/vacuum.md); VOLINFO GROUPS: each
 * group as [id, drive, writable, members], a member as [server, state, lag bytes, repairs, error].
 */
async function volinfoCommand(ctx: Context): Promise<Reply> {
  const { argv } = ctx;
  if (argv.length > 2) fail("ERR wrong number of arguments for 'volinfo' command");
  if (argv.length === 2) {
    if (argv[1]!.toString('utf8').toUpperCase() !== 'GROUPS') fail(`ERR unknown subcommand '${argv[1]!.toString('utf8')}'. Try VOLINFO or VOLINFO GROUPS.`);
    const groups = await needDb(ctx).groups();
    return array(groups.map((g) => array([
      integer(g.id), bulk(g.drive), integer(g.writable ? 1 : 0),
      array(g.members.map((m) => array([bulk(m.url), bulk(m.state), integer(m.lagBytes), integer(m.repairs), m.lastError === null ? NULL_BULK : bulk(m.lastError)]))),
    ])));
  }
  const volumes = await needDb(ctx).volinfo();
  return array(volumes.map((v) => array([integer(v.id), bulk(v.drive), integer(v.sizeBytes), integer(v.group), integer(v.garbageBytes), integer(v.liveBytes)])));
}

/** SCRUB [WAIT]: starts one in the background (as BGSAVE answers), or WAITs for its summary. */
async function scrubCommand(ctx: Context): Promise<Reply> {
  const { argv } = ctx;
  if (argv.length > 2) fail("ERR wrong number of arguments for 'scrub' command");
  const wait = argv.length === 2;
  if (wait && argv[1]!.toString('utf8').toUpperCase() !== 'WAIT') fail('ERR syntax error: SCRUB [WAIT]');
  const { started, summary } = await needDb(ctx).scrub(wait);
  if (summary === null) return simple(started ? 'Background scrub started' : 'Background scrub already in progress');
  return array([
    bulk('volumes'), integer(summary.volumes), bulk('needles'), integer(summary.needles), bulk('bytes'), integer(summary.bytes),
    bulk('invalid'), integer(summary.invalid), bulk('unreferenced'), integer(summary.unreferenced), bulk('repaired'), integer(summary.repaired),
    bulk('damaged'), integer(summary.damaged), bulk('duration_ms'), integer(summary.durationMs),
    bulk('damaged_keys'), array(summary.damagedNeedles.map((d) => bulk(Buffer.from(d.key)))),
  ]);
}

export const ADMIN_HANDLERS: Readonly<Record<string, Handler>> = {
  publish: publishCommand,
  spublish: spublishCommand,
  pubsub: pubsubCommand,
  time: timeCommand,
  save: saveCommand,
  bgsave: bgsaveCommand,
  lastsave: lastsaveCommand,
  function: functionCommand,
  compact: compactCommand,
  vacuum: vacuumCommand,
  scrub: scrubCommand,
  volinfo: volinfoCommand,
};
