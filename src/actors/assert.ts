// Exhaustiveness for the one switch of each actor: a message type that no case handles is a
// programming error, and the actor crashes (the supervisor restarts it) rather than guess.
export function assertNever(value: never): never {
  throw new Error(`unhandled message: ${JSON.stringify(value)}`);
}
