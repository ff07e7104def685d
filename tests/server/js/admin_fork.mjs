// The official chromadb JS client's AdminClient, tenant/database-scoped ChromaClients, fork,
// forkCount and getIndexingStatus against `vecduck run`.
// Usage: node admin_fork.mjs PORT. Runs every step, recording what the server answered (values,
// or the class name of the error thrown), and prints one JSON line that
// tests/server/test_js_admin_fork.py checks. Exits 1 only when a step throws unexpectedly.
// Explicit embeddings only: no model needed.
import { AdminClient, ChromaClient } from "chromadb";

const port = Number(process.argv[2]);
const host = "127.0.0.1";
const admin = new AdminClient({ host, port, ssl: false });
const scoped = (tenant, database) => new ChromaClient({ host, port, ssl: false, tenant, database });
const report = {};
let step = "start";

// the error class a call fails with, or "none"
async function failure(promise) {
  try {
    await promise;
    return "none";
  } catch (error) {
    return error.name;
  }
}
function rows(result) {
  return {
    ids: result.ids,
    documents: result.documents,
    metadatas: result.metadatas,
    embeddings: result.embeddings,
  };
}

try {
  // -- tenants and databases ------------------------------------------------------------
  step = "tenants";
  const tenant = "js-admin-tenant";
  await admin.createTenant({ name: tenant });
  report.tenant = await admin.getTenant({ name: tenant });
  report.tenantAgain = await failure(admin.createTenant({ name: tenant }));
  report.tenantMissing = await failure(admin.getTenant({ name: "js-nobody-tenant" }));

  step = "databases";
  for (const name of ["js-db-a", "js-db-b", "js-db-c"]) {
    await admin.createDatabase({ name, tenant });
  }
  report.databaseA = await admin.getDatabase({ name: "js-db-a", tenant });
  report.databases = await admin.listDatabases({ tenant });
  report.databasePages = [
    await admin.listDatabases({ tenant, limit: 2, offset: 0 }),
    await admin.listDatabases({ tenant, limit: 2, offset: 2 }),
    await admin.listDatabases({ tenant, limit: 2, offset: 4 }),
  ].map((page) => page.map((d) => d.name));
  report.databaseAgain = await failure(admin.createDatabase({ name: "js-db-a", tenant }));
  report.databaseMissing = await failure(admin.getDatabase({ name: "js-db-none", tenant }));
  report.databaseNoTenant = await failure(admin.createDatabase({ name: "js-db-a", tenant: "js-nobody-tenant" }));
  report.deleteMissing = await failure(admin.deleteDatabase({ name: "js-db-none", tenant }));

  step = "isolation";
  const clientA = scoped(tenant, "js-db-a");
  const clientB = scoped(tenant, "js-db-b");
  const inA = await clientA.createCollection({ name: "same-name", metadata: { db: "a" }, embeddingFunction: null });
  const inB = await clientB.createCollection({ name: "same-name", metadata: { db: "b" }, embeddingFunction: null });
  await inA.add({ ids: ["x", "y"], embeddings: [[1, 0], [0, 1]], documents: ["a-x", "a-y"] });
  await inB.add({ ids: ["x"], embeddings: [[1, 2, 3]], documents: ["b-x"] });
  await clientB.createCollection({ name: "b-only", embeddingFunction: null });
  report.isolation = {
    sameId: inA.id === inB.id,
    namesA: (await clientA.listCollections()).map((c) => c.name).sort(),
    namesB: (await clientB.listCollections()).map((c) => c.name).sort(),
    countA: await clientA.countCollections(),
    countB: await clientB.countCollections(),
    metadataA: (await clientA.getCollection({ name: "same-name", embeddingFunction: null })).metadata,
    metadataB: (await clientB.getCollection({ name: "same-name", embeddingFunction: null })).metadata,
    docA: (await inA.get({ ids: ["x"] })).documents,
    docB: (await inB.get({ ids: ["x"] })).documents,
    bOnlyFromA: await failure(clientA.getCollection({ name: "b-only", embeddingFunction: null })),
    bOnlyFromDefault: await failure(scoped("default_tenant", "default_database").getCollection({ name: "b-only" })),
  };

  step = "deleteDatabase";
  await admin.deleteDatabase({ name: "js-db-a", tenant });
  report.afterDelete = {
    databases: (await admin.listDatabases({ tenant })).map((d) => d.name).sort(),
    // as Chroma's server: a deleted database lists no collections
    listA: (await clientA.listCollections()).map((c) => c.name),
    countInA: await failure(inA.count()),
    newClientA: (await scoped(tenant, "js-db-a").listCollections()).map((c) => c.name),
    createInA: await failure(clientA.createCollection({ name: "after-delete", embeddingFunction: null })),
    docB: (await inB.get({ ids: ["x"] })).documents,
    countB: await clientB.countCollections(),
  };

  // -- fork -------------------------------------------------------------------------------
  step = "fork";
  const source = await clientB.createCollection({ name: "fork-src", embeddingFunction: null });
  await source.add({
    ids: ["r1", "r2", "r3", "r4"],
    embeddings: [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
      [1, 1, 1],
    ],
    metadatas: [{ k: 1 }, { k: 2 }, { k: 3 }, { k: 4 }],
    documents: ["one", "two", "three", "four"],
  });
  report.forkCountBefore = await source.forkCount();
  const fork = await source.fork({ name: "fork-dst" });
  const include = ["documents", "metadatas", "embeddings"];
  report.fork = {
    name: fork.name,
    sameId: fork.id === source.id,
    source: rows(await source.get({ include })),
    copy: rows(await fork.get({ include })),
    queryFork: (await fork.query({ queryEmbeddings: [[1, 0.1, 0]], nResults: 2 })).ids,
    querySource: (await source.query({ queryEmbeddings: [[1, 0.1, 0]], nResults: 2 })).ids,
    countSource: await source.forkCount(),
    countFork: await fork.forkCount(),
  };
  await source.add({ ids: ["s-new"], embeddings: [[2, 2, 2]] });
  await fork.add({ ids: ["f-new"], embeddings: [[3, 3, 3]] });
  await source.update({ ids: ["r1"], metadatas: [{ k: 10 }] });
  await fork.delete({ ids: ["r2"] });
  report.independent = {
    source: (await source.get({ include: ["metadatas"] })).ids,
    fork: (await fork.get({ include: ["metadatas"] })).ids,
    sourceR1: (await source.get({ ids: ["r1"] })).metadatas,
    forkR1: (await fork.get({ ids: ["r1"] })).metadatas,
  };
  const grandchild = await fork.fork({ name: "fork-dst-2" });
  report.grandchild = {
    ids: (await grandchild.get()).ids,
    counts: [await source.forkCount(), await fork.forkCount(), await grandchild.forkCount()],
  };
  report.forkTaken = await failure(source.fork({ name: "fork-dst" }));
  await clientB.deleteCollection({ name: "fork-src" });
  report.afterSourceDeleted = {
    ids: (await fork.get()).ids,
    query: (await fork.query({ queryEmbeddings: [[3, 3, 3]], nResults: 1 })).ids,
    forkCount: await fork.forkCount(),
  };

  // -- indexing status ------------------------------------------------------------------------
  step = "indexing status";
  const indexed = await clientB.createCollection({ name: "indexed", embeddingFunction: null });
  report.statusEmpty = await indexed.getIndexingStatus();
  await indexed.add({ ids: ["a", "b", "c"], embeddings: [[1, 0], [0, 1], [1, 1]] });
  await indexed.upsert({ ids: ["a", "d"], embeddings: [[2, 0], [0, 2]] });
  await indexed.delete({ ids: ["b"] });
  report.statusWritten = await indexed.getIndexingStatus();
  await indexed.query({ queryEmbeddings: [[1, 0]], nResults: 1 });
  report.statusRead = await indexed.getIndexingStatus();

  console.log(JSON.stringify(report));
} catch (error) {
  console.log(`FAILED at ${step}: ${error && error.stack ? error.stack : error}`);
  process.exit(1);
}
