import type { Alert } from '../../plan/migration-types';
import type { Plan } from '../../plan/plan-schema';

/**
 * Lag and retained-data alerts, once per breach (again only after the value has come back under
 * half the threshold). A delivery that fails is kept for the heartbeat (`dbferry status`).
 */
export class CdcAlarms {
  #lagAlerted = false;
  #retainedAlerted = false;
  #missed: Array<{ kind: string; at: string; error: string }> = [];

  constructor(
    private readonly plan: Plan,
    private readonly deps: { alert(plan: Plan, alert: Alert): Promise<void> },
  ) {}

  details() {
    return this.#missed.length ? { alertsMissed: this.#missed } : {};
  }

  async check(lagSeconds: number, retainedBytes: number, retainedBy: string): Promise<void> {
    // Alerts go to the webhook and to the SNS topic (either may be the only one).
    if (!this.plan.alerts?.webhook && !this.plan.aws?.snsTopicArn) return;
    const lagLimit = this.plan.alerts?.lagSeconds ?? 60;
    const gbLimit = this.plan.alerts?.slotWalGb ?? 10;
    const gb = retainedBytes / 1024 ** 3;
    if (!this.#lagAlerted && lagSeconds > lagLimit) {
      this.#lagAlerted = true;
      await this.#send('cdc-lag', `:hourglass: dbferry migration *${this.plan.name}*: CDC is ${lagSeconds.toFixed(0)} s behind the source (alert threshold ${lagLimit} s)`);
    } else if (lagSeconds < lagLimit / 2) this.#lagAlerted = false;
    if (!this.#retainedAlerted && gb > gbLimit) {
      this.#retainedAlerted = true;
      await this.#send('slot-wal', `:floppy_disk: dbferry migration *${this.plan.name}*: ${retainedBy} holds ${gb.toFixed(1)} GB on the source (threshold ${gbLimit} GB): CDC is behind or stopped, and the source's disk fills`);
    } else if (gb < gbLimit / 2) this.#retainedAlerted = false;
  }

  async #send(kind: 'cdc-lag' | 'slot-wal', text: string): Promise<void> {
    const at = new Date().toISOString();
    try {
      await this.deps.alert(this.plan, { kind, text, at });
    } catch (err) {
      this.#missed = [...this.#missed, { kind, at, error: (err as Error).message }].slice(-20);
    }
  }
}
