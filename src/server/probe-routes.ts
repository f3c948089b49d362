/**
 * The orchestrator's probes on the public port: liveness (the process serves) and readiness (it
 * takes calls; fails while draining, so the load balancer stops sending them).
 */
import type { Admission } from './admission.js';
import type { App } from './app.js';

export function registerProbeRoutes(app: App, admission: Admission): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) =>
    admission.draining ? reply.code(503).send({ status: 'draining', calls: admission.startedCalls }) : { status: 'ready', calls: admission.startedCalls },
  );
}
