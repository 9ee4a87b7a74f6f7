// A pub/sub subscription as an async iterator, with a bounded queue: a consumer that falls
// more than `limit` messages behind is cut off (as Redis closes a subscriber past its output
// buffer limit) instead of letting memory grow without bound.
import type { PubSubMessage, Subscription } from './api.js';
import { StoreError } from '../runtime/errors.js';

export class QueueSubscription implements Subscription {
  private readonly queue: PubSubMessage[] = [];
  private waiter: ((r: IteratorResult<PubSubMessage>) => void) | null = null;
  private failWaiter: ((err: Error) => void) | null = null;
  private ended = false;
  private error: Error | null = null;

  constructor(private readonly onClose: () => Promise<void>, private readonly limit = 10_000) {}

  push(message: PubSubMessage): void {
    if (this.ended) return;
    if (this.waiter !== null) {
      const wake = this.waiter;
      this.waiter = null;
      this.failWaiter = null;
      wake({ value: message, done: false });
      return;
    }
    if (this.queue.length >= this.limit) {
      this.error = new StoreError('QUEUE_FULL', `subscriber fell ${this.limit} messages behind; subscription closed`);
      void this.close();
      return;
    }
    this.queue.push(message);
  }

  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    if (this.waiter !== null) {
      const wake = this.waiter;
      const fail = this.failWaiter;
      this.waiter = null;
      this.failWaiter = null;
      if (this.error !== null && fail !== null) fail(this.error);
      else wake({ value: undefined, done: true });
    }
    await this.onClose();
  }

  [Symbol.asyncIterator](): AsyncIterator<PubSubMessage> {
    return {
      next: () => this.next(),
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }

  private next(): Promise<IteratorResult<PubSubMessage>> {
    const message = this.queue.shift();
    if (message !== undefined) return Promise.resolve({ value: message, done: false });
    if (this.error !== null) return Promise.reject(this.error);
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = resolve;
      this.failWaiter = reject;
    });
  }
}
