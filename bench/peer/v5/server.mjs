// PostGraphile v5 for bench/peer.sh, in its production shape: no watch,
// no GraphiQL (Ruru), no explain, a pg pool of PG_POOL per worker, and
// WORKERS node:cluster workers sharing one port (PostGraphile v5 has no
// cluster option of its own; node:cluster is how Node uses several cores).
import cluster from "node:cluster";
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";

const workers = Number(process.env.WORKERS ?? 2);
const port = Number(process.env.PORT ?? 8105);

if (cluster.isPrimary && workers > 1) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on("exit", (worker, code) => {
    console.error(`worker ${worker.process.pid} exited with ${code}`);
    process.exit(1);
  });
} else {
  const preset = {
    extends: [PostGraphileAmberPreset],
    pgServices: [
      makePgService({
        connectionString: process.env.DATABASE_URL,
        schemas: (process.env.SCHEMAS ?? "giveaway,giftcard,identity").split(","),
        poolConfig: { max: Number(process.env.PG_POOL ?? 20) },
      }),
    ],
    grafserv: { port, graphiqlOnGraphQLGET: false, graphiql: false, watch: false, websockets: false },
    grafast: { explain: false },
  };
  const pgl = postgraphile(preset);
  const serv = pgl.createServ(grafserv);
  const server = createServer();
  server.keepAliveTimeout = 65_000;
  await serv.addTo(server);
  server.listen(port, "127.0.0.1", () => console.log(`postgraphile v5 worker ${process.pid} on ${port}`));
}
