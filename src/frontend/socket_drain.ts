// Output back-pressure shared by the RESP and line-protocol connections: wait until a socket
// has written its buffer out. A client whose unsent replies do not shrink for STALL_MS is
// disconnected (it holds its burst meanwhile; one that never reads must not hold it forever);
// a slow one that keeps reading is never cut off.
import type { Socket } from 'node:net';

/** How long unsent replies may stay without shrinking before the client is cut off. */
export const STALL_MS = 5000;

/** Resolves when the socket has written its buffer out, or is gone. */
export function drained(socket: Socket): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let last = socket.writableLength;
    const timer = setInterval(() => {
      const now = socket.writableLength;
      if (now >= last) socket.destroy();
      last = now;
    }, STALL_MS);
    timer.unref();
    const done = (): void => {
      clearInterval(timer);
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}
