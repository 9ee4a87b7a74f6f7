// The command table: every command BriseDB speaks, declared as data in the manner of Redis'
// src/commands/*.json (name, arity, flags, group, syntax, summary), and the one place where a
// command line is checked against it (checkCommand). Handlers (src/db/executor.ts) never
// re-check the name or the argument count; they only parse their options. The REPL's HELP and
// the README's command reference are read from this table, so they cannot drift from it.
//
// Arity follows Redis: it counts the command name; positive = exactly that many, negative =
// at least that many. Error texts are Redis' own, word for word, so clients that match on
// them (and people who know Redis) see what they expect.
import { error, type Reply } from './reply.js';

export type CommandFlag =
  | 'write' // changes data
  | 'readonly' // reads data only
  | 'admin' // maintenance of the whole database
  | 'pubsub' // publish/subscribe
  | 'transaction' // BEGIN / COMMIT / ROLLBACK
  | 'fast' // O(1) or O(log n)
  | 'connection' // about the connection itself, touches no data
  | 'needs-db' // needs the Database, not just a Session (compact, volinfo)
  | 'front-end'; // handled by the front end (REPL or RESP connection), not by the executor

export type CommandGroup = 'string' | 'generic' | 'transactions' | 'pubsub' | 'server' | 'connection';

export interface CommandSpec {
  /** Lower case, as Redis names its commands in error messages. */
  readonly name: string;
  readonly arity: number;
  readonly flags: readonly CommandFlag[];
  readonly group: CommandGroup;
  readonly syntax: string;
  readonly summary: string;
  /** What the command answers, for HELP and the README. */
  readonly reply: string;
}

export const COMMANDS: readonly CommandSpec[] = [
  { name: 'set', arity: -3, flags: ['write'], group: 'string', syntax: 'SET key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | KEEPTTL]',
    summary: 'Stores a value, optionally with a time to live; NX/XX/GET are judged atomically.', reply: 'OK; nil when NX/XX was not met; with GET the old value or nil' },
  { name: 'get', arity: 2, flags: ['readonly', 'fast'], group: 'string', syntax: 'GET key',
    summary: 'Returns the value of a key.', reply: 'bulk string, or nil when the key does not exist' },
  { name: 'mset', arity: -3, flags: ['write'], group: 'string', syntax: 'MSET key value [key value ...]',
    summary: 'Sets several keys at once, atomically.', reply: 'OK' },
  { name: 'mget', arity: -2, flags: ['readonly', 'fast'], group: 'string', syntax: 'MGET key [key ...]',
    summary: 'Returns the values of several keys.', reply: 'array of bulk strings or nils' },
  { name: 'setnx', arity: 3, flags: ['write', 'fast'], group: 'string', syntax: 'SETNX key value',
    summary: 'Sets a key only if it does not exist.', reply: 'integer: 1 if set, 0 if not' },
  { name: 'setex', arity: 4, flags: ['write'], group: 'string', syntax: 'SETEX key seconds value',
    summary: 'Sets a value with a time to live in seconds.', reply: 'OK' },
  { name: 'psetex', arity: 4, flags: ['write'], group: 'string', syntax: 'PSETEX key milliseconds value',
    summary: 'Sets a value with a time to live in milliseconds.', reply: 'OK' },
  { name: 'getset', arity: 3, flags: ['write', 'fast'], group: 'string', syntax: 'GETSET key value',
    summary: 'Sets a value (without expiry) and returns the old one, atomically.', reply: 'the old value, or nil' },
  { name: 'getdel', arity: 2, flags: ['write', 'fast'], group: 'string', syntax: 'GETDEL key',
    summary: 'Returns a value and deletes its key, atomically.', reply: 'the value, or nil' },
  { name: 'getex', arity: -2, flags: ['write', 'fast'], group: 'string', syntax: 'GETEX key [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | PERSIST]',
    summary: 'Returns a value and sets or removes its time to live, atomically.', reply: 'the value, or nil' },
  { name: 'msetnx', arity: -3, flags: ['write'], group: 'string', syntax: 'MSETNX key value [key value ...]',
    summary: 'Sets several keys only if none of them exists, atomically.', reply: 'integer: 1 if all were set, 0 if none' },
  { name: 'append', arity: 3, flags: ['write'], group: 'string', syntax: 'APPEND key value',
    summary: 'Appends to a value (creating the key), keeping its time to live.', reply: 'integer: the new length' },
  { name: 'strlen', arity: 2, flags: ['readonly', 'fast'], group: 'string', syntax: 'STRLEN key',
    summary: 'Returns the length of a value in bytes.', reply: 'integer: 0 when the key does not exist' },
  { name: 'getrange', arity: 4, flags: ['readonly'], group: 'string', syntax: 'GETRANGE key start end',
    summary: 'Returns the bytes of a value from start to end (inclusive; negative counts from the end).', reply: 'bulk string' },
  { name: 'substr', arity: 4, flags: ['readonly'], group: 'string', syntax: 'SUBSTR key start end',
    summary: 'Same as GETRANGE.', reply: 'bulk string' },
  { name: 'setrange', arity: 4, flags: ['write'], group: 'string', syntax: 'SETRANGE key offset value',
    summary: 'Overwrites part of a value at an offset, padding with zero bytes.', reply: 'integer: the new length' },
  { name: 'incr', arity: 2, flags: ['write', 'fast'], group: 'string', syntax: 'INCR key',
    summary: 'Adds 1 to a 64-bit integer value (a missing key counts as 0), atomically.', reply: 'integer: the new value' },
  { name: 'decr', arity: 2, flags: ['write', 'fast'], group: 'string', syntax: 'DECR key',
    summary: 'Subtracts 1 from a 64-bit integer value, atomically.', reply: 'integer: the new value' },
  { name: 'incrby', arity: 3, flags: ['write', 'fast'], group: 'string', syntax: 'INCRBY key increment',
    summary: 'Adds an increment to a 64-bit integer value, atomically.', reply: 'integer: the new value' },
  { name: 'decrby', arity: 3, flags: ['write', 'fast'], group: 'string', syntax: 'DECRBY key decrement',
    summary: 'Subtracts a decrement from a 64-bit integer value, atomically.', reply: 'integer: the new value' },
  { name: 'incrbyfloat', arity: 3, flags: ['write', 'fast'], group: 'string', syntax: 'INCRBYFLOAT key increment',
    summary: 'Adds a floating-point increment, with the precision and printing of Redis (80-bit long double).', reply: 'bulk string: the new value' },
  { name: 'lcs', arity: -3, flags: ['readonly'], group: 'string', syntax: 'LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]',
    summary: 'The longest common subsequence of two values (Redis 7); the table is bounded (32 M cells).', reply: 'the subsequence; with LEN its length; with IDX the match ranges and the length' },
  { name: 'count', arity: 2, flags: ['readonly'], group: 'string', syntax: 'COUNT value',
    summary: 'Counts the live keys whose value equals the given value, byte for byte.', reply: 'integer' },
  { name: 'del', arity: -2, flags: ['write'], group: 'generic', syntax: 'DEL key [key ...]',
    summary: 'Deletes keys.', reply: 'integer: how many of the keys existed' },
  { name: 'delete', arity: -2, flags: ['write'], group: 'generic', syntax: 'DELETE key [key ...]',
    summary: 'Deletes keys (same as DEL).', reply: 'integer: how many of the keys existed' },
  { name: 'exists', arity: -2, flags: ['readonly', 'fast'], group: 'generic', syntax: 'EXISTS key [key ...]',
    summary: 'Counts how many of the given keys exist; a key named twice counts twice.', reply: 'integer' },
  { name: 'ttl', arity: 2, flags: ['readonly', 'fast'], group: 'generic', syntax: 'TTL key',
    summary: 'Remaining time to live in seconds (rounded to the nearest): -1 = no expiry, -2 = no such key.', reply: 'integer' },
  { name: 'pttl', arity: 2, flags: ['readonly', 'fast'], group: 'generic', syntax: 'PTTL key',
    summary: 'Remaining time to live in milliseconds: -1 = no expiry, -2 = no such key.', reply: 'integer' },
  { name: 'expire', arity: -3, flags: ['write', 'fast'], group: 'generic', syntax: 'EXPIRE key seconds [NX | XX | GT | LT]',
    summary: 'Sets a time to live in seconds; zero or negative deletes the key. NX: only without expiry; XX: only with one; GT/LT: only a later/earlier one.',
    reply: 'integer: 1 if set, 0 if the key does not exist or a condition failed' },
  { name: 'pexpire', arity: -3, flags: ['write', 'fast'], group: 'generic', syntax: 'PEXPIRE key milliseconds [NX | XX | GT | LT]',
    summary: 'Sets a time to live in milliseconds (options as EXPIRE).', reply: 'integer: 1 if set, else 0' },
  { name: 'expireat', arity: -3, flags: ['write', 'fast'], group: 'generic', syntax: 'EXPIREAT key unix-time-seconds [NX | XX | GT | LT]',
    summary: 'Sets the expiry as a Unix time in seconds; a time in the past deletes the key.', reply: 'integer: 1 if set, else 0' },
  { name: 'pexpireat', arity: -3, flags: ['write', 'fast'], group: 'generic', syntax: 'PEXPIREAT key unix-time-milliseconds [NX | XX | GT | LT]',
    summary: 'Sets the expiry as a Unix time in milliseconds.', reply: 'integer: 1 if set, else 0' },
  { name: 'expiretime', arity: 2, flags: ['readonly', 'fast'], group: 'generic', syntax: 'EXPIRETIME key',
    summary: 'The expiry as a Unix time in seconds: -1 = no expiry, -2 = no such key.', reply: 'integer' },
  { name: 'pexpiretime', arity: 2, flags: ['readonly', 'fast'], group: 'generic', syntax: 'PEXPIRETIME key',
    summary: 'The expiry as a Unix time in milliseconds: -1 = no expiry, -2 = no such key.', reply: 'integer' },
  { name: 'persist', arity: 2, flags: ['write', 'fast'], group: 'generic', syntax: 'PERSIST key',
    summary: 'Removes the time to live of a key.', reply: 'integer: 1 if a time to live was removed, else 0' },
  { name: 'unlink', arity: -2, flags: ['write', 'fast'], group: 'generic', syntax: 'UNLINK key [key ...]',
    summary: 'Deletes keys (same as DEL: space is reclaimed in the background either way).', reply: 'integer: how many of the keys existed' },
  { name: 'touch', arity: -2, flags: ['readonly', 'fast'], group: 'generic', syntax: 'TOUCH key [key ...]',
    summary: 'Counts how many of the given keys exist.', reply: 'integer' },
  { name: 'type', arity: 2, flags: ['readonly', 'fast'], group: 'generic', syntax: 'TYPE key',
    summary: 'The type of a value: string, or none when the key does not exist.', reply: 'simple string' },
  { name: 'rename', arity: 3, flags: ['write'], group: 'generic', syntax: 'RENAME key newkey',
    summary: 'Renames a key (its time to live moves with it), replacing newkey.', reply: 'OK; an error when key does not exist' },
  { name: 'renamenx', arity: 3, flags: ['write', 'fast'], group: 'generic', syntax: 'RENAMENX key newkey',
    summary: 'Renames a key only if newkey does not exist.', reply: 'integer: 1 if renamed, 0 if newkey exists' },
  { name: 'copy', arity: -3, flags: ['write'], group: 'generic', syntax: 'COPY source destination [DB destination-db] [REPLACE]',
    summary: 'Copies a value and its time to live to another key (database 0 only).', reply: 'integer: 1 if copied, else 0' },
  { name: 'randomkey', arity: 1, flags: ['readonly'], group: 'generic', syntax: 'RANDOMKEY',
    summary: 'Returns a random key.', reply: 'bulk string, or nil when there are no keys' },
  { name: 'object', arity: -2, flags: ['readonly'], group: 'generic', syntax: 'OBJECT ENCODING | FREQ | IDLETIME | REFCOUNT key',
    summary: 'Internals of a value: its encoding (int, embstr, raw), seconds since its last write.', reply: 'depends on the subcommand' },
  { name: 'flushall', arity: -1, flags: ['write'], group: 'server', syntax: 'FLUSHALL [ASYNC | SYNC]',
    summary: 'Removes every key, as one durable operation.', reply: 'OK' },
  { name: 'flushdb', arity: -1, flags: ['write'], group: 'server', syntax: 'FLUSHDB [ASYNC | SYNC]',
    summary: 'Same as FLUSHALL (there is one database).', reply: 'OK' },
  { name: 'keys', arity: 2, flags: ['readonly'], group: 'generic', syntax: 'KEYS pattern',
    summary: 'Lists the keys matching a glob pattern (* ? [abc] [^a] [a-z] \\x); bounded, an error past the limit.', reply: 'array of bulk strings' },
  { name: 'scan', arity: -2, flags: ['readonly'], group: 'generic', syntax: 'SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]',
    summary: 'Iterates over the keys a batch at a time; start with cursor 0, stop when it comes back as 0.',
    reply: 'array: [next cursor, array of keys]' },
  { name: 'dbsize', arity: 1, flags: ['readonly', 'fast'], group: 'server', syntax: 'DBSIZE',
    summary: 'Returns the number of live keys.', reply: 'integer' },
  { name: 'begin', arity: 1, flags: ['transaction', 'fast'], group: 'transactions', syntax: 'BEGIN',
    summary: 'Opens a (nested) transaction: later writes are seen only by this session until the outermost COMMIT.', reply: 'OK' },
  { name: 'commit', arity: 1, flags: ['transaction'], group: 'transactions', syntax: 'COMMIT',
    summary: 'Closes the innermost transaction, merging it into its parent; the outermost COMMIT writes all atomically.', reply: 'OK' },
  { name: 'rollback', arity: 1, flags: ['transaction', 'fast'], group: 'transactions', syntax: 'ROLLBACK',
    summary: 'Discards the writes of the innermost transaction.', reply: 'OK' },
  { name: 'publish', arity: 3, flags: ['pubsub', 'fast'], group: 'pubsub', syntax: 'PUBLISH channel message',
    summary: 'Posts a message to a channel.', reply: 'integer: the number of subscribers that received it' },
  { name: 'spublish', arity: 3, flags: ['pubsub', 'fast'], group: 'pubsub', syntax: 'SPUBLISH shardchannel message',
    summary: 'Posts a message to a shard channel (a namespace of its own: SSUBSCRIBE subscribers only).', reply: 'integer: how many subscribers received it' },
  { name: 'pubsub', arity: -2, flags: ['pubsub'], group: 'pubsub', syntax: 'PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT | SHARDCHANNELS [pattern] | SHARDNUMSUB [shardchannel ...] | HELP',
    summary: 'Channels with subscribers, subscribers per channel, patterns in use (every front end counted).', reply: 'array, or integer for NUMPAT' },
  { name: 'subscribe', arity: -2, flags: ['pubsub', 'front-end'], group: 'pubsub', syntax: 'SUBSCRIBE channel [channel ...]',
    summary: 'Listens to channels (TCP front end only; not in the embedded REPL, where no other process can publish).',
    reply: 'a stream of messages' },
  { name: 'compact', arity: 1, flags: ['admin', 'needs-db'], group: 'server', syntax: 'COMPACT',
    summary: 'Rewrites the index and the WAL to hold only live keys.', reply: 'OK' },
  { name: 'vacuum', arity: -1, flags: ['admin', 'needs-db'], group: 'server', syntax: 'VACUUM [volume]',
    summary: 'Gives back the space of garbage needles: copies the live ones of a volume into the current one, then removes it; without a volume, every volume whose garbage passes vacuum-threshold. Answers when done.',
    reply: 'array of one flat array per volume: volume, moved, copied_bytes, changed, expired, freed_bytes, removed (0/1), duration_ms, errors' },
  { name: 'scrub', arity: -1, flags: ['admin', 'needs-db'], group: 'server', syntax: 'SCRUB [WAIT]',
    summary: 'Reads every needle and checks its checksums in the background; a damaged one is rewritten from a good member of its group, or reported. INFO operations shows its progress; WAIT answers when done.',
    reply: '"Background scrub started" (or "... already in progress"); WAIT: a flat array: volumes, needles, bytes, invalid, unreferenced, repaired, damaged, duration_ms, damaged_keys' },
  { name: 'time', arity: 1, flags: ['fast'], group: 'server', syntax: 'TIME',
    summary: 'The server time: Unix seconds and microseconds.', reply: 'array of two bulk strings' },
  { name: 'save', arity: 1, flags: ['admin', 'needs-db'], group: 'server', syntax: 'SAVE',
    summary: 'Every acknowledged write is already durable; checkpoints the index so the next start replays less.', reply: 'OK' },
  { name: 'bgsave', arity: -1, flags: ['admin', 'needs-db'], group: 'server', syntax: 'BGSAVE [SCHEDULE]',
    summary: 'SAVE in the background; LASTSAVE moves when it is done.', reply: 'Background saving started' },
  { name: 'lastsave', arity: 1, flags: ['fast'], group: 'server', syntax: 'LASTSAVE',
    summary: 'Unix time of the last finished SAVE or BGSAVE (the server start before any).', reply: 'integer' },
  { name: 'function', arity: -2, flags: ['admin'], group: 'server', syntax: 'FUNCTION FLUSH [ASYNC | SYNC] | LIST',
    summary: 'There are no functions: FLUSH answers OK and LIST an empty array, for harnesses written for Redis.', reply: 'OK, or an empty array' },
  { name: 'volinfo', arity: -1, flags: ['admin', 'needs-db'], group: 'server', syntax: 'VOLINFO [GROUPS]',
    summary: 'Lists the volume files: id, drive, size in bytes, group, garbage bytes, live bytes; with GROUPS, the volume groups and their members.',
    reply: 'array of [id, drive, size, group, garbage, live] arrays; GROUPS: array of [group, drive, writable, [[server, state, lag bytes, repairs, last error], ...]]' },
  { name: 'ping', arity: -1, flags: ['connection', 'fast'], group: 'connection', syntax: 'PING [message]',
    summary: 'Answers PONG, or the message.', reply: 'PONG, or the message as a bulk string' },
  { name: 'echo', arity: 2, flags: ['connection', 'fast'], group: 'connection', syntax: 'ECHO message',
    summary: 'Answers the message.', reply: 'bulk string' },
  { name: 'help', arity: -1, flags: ['connection'], group: 'connection', syntax: 'HELP [command]',
    summary: 'Lists the commands, or shows the syntax of one.', reply: 'text' },
  { name: 'multi', arity: 1, flags: ['transaction', 'front-end', 'fast'], group: 'transactions', syntax: 'MULTI',
    summary: 'Queues the following commands until EXEC, which runs them as one atomic transaction (TCP only).', reply: 'OK' },
  { name: 'watch', arity: -2, flags: ['transaction', 'front-end', 'fast'], group: 'transactions', syntax: 'WATCH key [key ...]',
    summary: 'Makes the next EXEC answer nil (and apply nothing) if any of these keys changes first (TCP only).', reply: 'OK' },
  { name: 'unwatch', arity: 1, flags: ['transaction', 'front-end', 'fast'], group: 'transactions', syntax: 'UNWATCH',
    summary: 'Forgets the watched keys (TCP only).', reply: 'OK' },
  { name: 'exec', arity: 1, flags: ['transaction', 'front-end'], group: 'transactions', syntax: 'EXEC',
    summary: 'Runs the commands queued since MULTI, atomically (TCP only).', reply: 'array of the replies; nil when a watched key changed' },
  { name: 'discard', arity: 1, flags: ['transaction', 'front-end', 'fast'], group: 'transactions', syntax: 'DISCARD',
    summary: 'Drops the commands queued since MULTI (TCP only).', reply: 'OK' },
  { name: 'unsubscribe', arity: -1, flags: ['pubsub', 'front-end'], group: 'pubsub', syntax: 'UNSUBSCRIBE [channel ...]',
    summary: 'Stops listening to channels (all when none given) (TCP only).', reply: 'unsubscribe confirmations' },
  { name: 'ssubscribe', arity: -2, flags: ['pubsub', 'front-end'], group: 'pubsub', syntax: 'SSUBSCRIBE shardchannel [shardchannel ...]',
    summary: 'Listens for messages of shard channels (SPUBLISH; TCP only).', reply: 'a confirmation per channel, then smessage frames' },
  { name: 'sunsubscribe', arity: -1, flags: ['pubsub', 'front-end'], group: 'pubsub', syntax: 'SUNSUBSCRIBE [shardchannel ...]',
    summary: 'Stops listening to shard channels (all without arguments).', reply: 'a confirmation per channel' },
  { name: 'psubscribe', arity: -2, flags: ['pubsub', 'front-end'], group: 'pubsub', syntax: 'PSUBSCRIBE pattern [pattern ...]',
    summary: 'Listens to every channel matching glob patterns (TCP only).', reply: 'a stream of pmessages' },
  { name: 'punsubscribe', arity: -1, flags: ['pubsub', 'front-end'], group: 'pubsub', syntax: 'PUNSUBSCRIBE [pattern ...]',
    summary: 'Stops listening to patterns (all when none given) (TCP only).', reply: 'punsubscribe confirmations' },
  { name: 'hello', arity: -1, flags: ['connection', 'front-end', 'fast'], group: 'connection', syntax: 'HELLO [protover [AUTH username password] [SETNAME clientname]]',
    summary: 'Chooses RESP2 or RESP3 and answers the server\'s properties (TCP only).', reply: 'map of server properties' },
  { name: 'auth', arity: -2, flags: ['connection', 'front-end', 'fast'], group: 'connection', syntax: 'AUTH [username] password',
    summary: 'Authenticates the connection with the requirepass password (TCP only).', reply: 'OK' },
  { name: 'select', arity: 2, flags: ['connection', 'front-end', 'fast'], group: 'connection', syntax: 'SELECT index',
    summary: 'Selects the database: only 0 exists (TCP only).', reply: 'OK' },
  { name: 'brise.sync', arity: 4, flags: ['admin', 'front-end'], group: 'server', syntax: 'BRISE.SYNC history-id|? applied-lsn volumes-json',
    summary: 'Turns this connection into a replication stream from the given point (what `node cmd/replica.js` sends; docs/replica.md) (TCP only).', reply: '+CONTINUE or +FULLRESYNC, then binary frames' },
  { name: 'replconf', arity: -1, flags: ['admin', 'front-end', 'fast'], group: 'server', syntax: 'REPLCONF listening-port port | ACK lsn',
    summary: 'What a replica tells its master: the port it serves on, and the LSN it has applied (TCP only).', reply: 'OK; nothing for ACK' },
  { name: 'role', arity: 1, flags: ['admin', 'front-end', 'fast'], group: 'server', syntax: 'ROLE',
    summary: 'master with its last LSN and replicas, or slave with its master, link state and applied LSN (TCP only; docs/replica.md).', reply: 'array' },
  { name: 'wait', arity: 3, flags: ['admin', 'front-end'], group: 'server', syntax: 'WAIT numreplicas timeout',
    summary: 'Waits until numreplicas replicas acknowledged the writes answered so far, or timeout ms (0: no limit) (TCP only).', reply: 'integer: replicas that acknowledged' },
  { name: 'replicaof', arity: 3, flags: ['admin', 'front-end'], group: 'server', syntax: 'REPLICAOF NO ONE | REPLICAOF host port',
    summary: 'NO ONE promotes a replica to a master on a new history; a server is made a replica by starting node cmd/replica.js (TCP only).', reply: 'OK' },
  { name: 'slaveof', arity: 3, flags: ['admin', 'front-end'], group: 'server', syntax: 'SLAVEOF NO ONE | SLAVEOF host port',
    summary: 'The old name of REPLICAOF (TCP only).', reply: 'OK' },
  { name: 'brise.lsn', arity: 1, flags: ['admin', 'front-end', 'fast'], group: 'server', syntax: 'BRISE.LSN',
    summary: 'The LSN a replica must reach to show the writes answered on this connection (on a replica: its applied LSN) (TCP only).', reply: 'integer' },
  { name: 'brise.waitlsn', arity: 3, flags: ['admin', 'front-end'], group: 'server', syntax: 'BRISE.WAITLSN lsn timeout-ms',
    summary: 'Waits until this server shows every write up to lsn (read-your-writes on a replica) (TCP only).', reply: 'integer: the applied LSN; -LAGGING at the timeout' },
  { name: 'info', arity: -1, flags: ['admin', 'front-end'], group: 'server', syntax: 'INFO [section ...]',
    summary: 'Server, clients, memory, persistence, stats, replication, keyspace and actors, as text (TCP only).', reply: 'bulk string' },
  { name: 'config', arity: -2, flags: ['admin', 'front-end'], group: 'server', syntax: 'CONFIG GET parameter [parameter ...]',
    summary: 'Reads configuration parameters (what redis-benchmark and clients ask) (TCP only).', reply: 'map of parameter to value' },
  { name: 'sign', arity: 4, flags: ['admin', 'front-end'], group: 'server', syntax: 'SIGN GET|HEAD|PUT key seconds | SIGN WS path?query seconds',
    summary: 'A signed URL of the HTTP API, valid for seconds (at most 7 days), signed with --http-token (TCP only; docs/http.md).',
    reply: 'bulk string: the path and query to append to the HTTP base URL' },
  { name: 'client', arity: -2, flags: ['connection', 'front-end'], group: 'connection', syntax: 'CLIENT SETNAME name | GETNAME | SETINFO attr value | ID | INFO | LIST [TYPE type | ID id ...] | KILL ip:port | KILL [ID id | ADDR ip:port | LADDR ip:port | TYPE type | USER user | SKIPME yes|no] ... | NO-EVICT on|off | NO-TOUCH on|off | HELP',
    summary: 'Names and describes connections (TCP only).', reply: 'depends on the subcommand' },
  { name: 'command', arity: -1, flags: ['connection', 'front-end'], group: 'connection', syntax: 'COMMAND [COUNT | DOCS | INFO name ...]',
    summary: 'Describes the commands (TCP only).', reply: 'array' },
  { name: 'stop', arity: 1, flags: ['connection', 'front-end'], group: 'connection', syntax: 'STOP',
    summary: 'Closes this connection (the seed\'s name for QUIT).', reply: 'OK' },
  { name: 'reset', arity: 1, flags: ['connection', 'front-end', 'fast'], group: 'connection', syntax: 'RESET',
    summary: 'Resets the connection: drops MULTI, WATCH, subscriptions, the name, RESP3, and AUTH when a password is set (TCP only).', reply: 'RESET' },
  { name: 'quit', arity: -1, flags: ['connection', 'front-end'], group: 'connection', syntax: 'QUIT',
    summary: 'Closes the connection (in the REPL: closes the database and exits).', reply: 'OK' },
  { name: 'exit', arity: -1, flags: ['connection', 'front-end'], group: 'connection', syntax: 'EXIT',
    summary: 'Same as QUIT.', reply: 'OK' },
];

const BY_NAME: ReadonlyMap<string, CommandSpec> = new Map(COMMANDS.map((c) => [c.name, c]));

/** The spec of a command by name, any case; undefined when unknown. */
export function lookupCommand(name: string | Uint8Array): CommandSpec | undefined {
  const text = typeof name === 'string' ? name : Buffer.from(name).toString('latin1');
  // Command names are short ASCII; a long name cannot be one, and lower-casing it is waste.
  if (text.length > 32) return undefined;
  return BY_NAME.get(text.toLowerCase());
}

export function hasFlag(spec: CommandSpec, flag: CommandFlag): boolean {
  return spec.flags.includes(flag);
}

export type CheckResult = { ok: true; spec: CommandSpec } | { ok: false; reply: Reply };

/** Redis prints at most 128 bytes of the name and of the argument list in this error. */
const UNKNOWN_PREVIEW_BYTES = 128;

/** Checks a command line against the table: a known name and an allowed number of arguments. */
export function checkCommand(argv: readonly Uint8Array[]): CheckResult {
  const first = argv[0];
  if (first === undefined) return { ok: false, reply: error('ERR empty command') };
  const spec = lookupCommand(first);
  if (spec === undefined) return { ok: false, reply: unknownCommand(argv) };
  if (!arityAllows(spec.arity, argv.length)) return { ok: false, reply: wrongArity(spec.name) };
  return { ok: true, spec };
}

export function arityAllows(arity: number, argc: number): boolean {
  return arity >= 0 ? argc === arity : argc >= -arity;
}

/** `ERR unknown command 'FOO', with args beginning with: 'a' 'b' ` as Redis words it. */
export function unknownCommand(argv: readonly Uint8Array[]): Reply {
  const name = Buffer.from(argv[0] ?? []).subarray(0, UNKNOWN_PREVIEW_BYTES).toString('utf8');
  let args = '';
  for (let i = 1; i < argv.length && args.length < UNKNOWN_PREVIEW_BYTES; i++) {
    const room = UNKNOWN_PREVIEW_BYTES - args.length;
    args += `'${Buffer.from(argv[i]!).subarray(0, room).toString('utf8')}' `;
  }
  return error(`ERR unknown command '${name}', with args beginning with: ${args}`);
}

export function wrongArity(name: string): Reply {
  return error(`ERR wrong number of arguments for '${name}' command`);
}

export const SYNTAX_ERROR = 'ERR syntax error';
export const NOT_AN_INTEGER = 'ERR value is not an integer or out of range';

/** Lines of HELP: the list of commands by group, or the syntax and summary of one. */
export function helpLines(command?: string): string[] {
  if (command === undefined) {
    const lines = ['Commands (HELP <command> for details):'];
    for (const group of GROUP_ORDER) {
      const names = COMMANDS.filter((c) => c.group === group).map((c) => c.name.toUpperCase());
      lines.push(`  ${(group + ':').padEnd(14)}${names.join(' ')}`);
    }
    return lines;
  }
  const spec = lookupCommand(command);
  if (spec === undefined) return [`No help for '${command}': unknown command. Type HELP for the list.`];
  return [
    `  ${spec.syntax}`,
    `  summary: ${spec.summary}`,
    `  reply: ${spec.reply}`,
    `  group: ${spec.group}`,
  ];
}

const GROUP_ORDER: readonly CommandGroup[] = ['string', 'generic', 'transactions', 'pubsub', 'server', 'connection'];
