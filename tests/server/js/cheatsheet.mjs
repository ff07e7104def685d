// The official chromadb JS client against `vecduck run`: the JS cheatsheet, step by step.
// Usage: node cheatsheet.mjs PORT [TOKEN]. Prints "ok <step>" per step and "ALL OK" at the end;
// exits 1 with the failing step on the first failure. Explicit embeddings only: no model needed.
import { ChromaClient } from "chromadb";

const port = Number(process.argv[2]);
const token = process.argv[3];
const headers = token ? { "x-chroma-token": token } : undefined;
const client = new ChromaClient({ host: "127.0.0.1", port, ssl: false, headers });

let step = "start";
function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}
function same(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}
async function run(name, body) {
  step = name;
  await body();
  console.log(`ok ${name}`);
}
async function rejects(promise, errorName, what) {
  try {
    await promise;
  } catch (error) {
    same(error.name, errorName, `${what} error class`);
    return error;
  }
  throw new Error(`${what}: expected ${errorName}, got success`);
}

try {
  await run("heartbeat", async () => check((await client.heartbeat()) > 0, "heartbeat > 0"));
  await run("version", async () => check(typeof (await client.version()) === "string", "version string"));

  const before = await client.countCollections(); // the server may be shared with other tests
  let collection;
  await run("createCollection", async () => {
    collection = await client.createCollection({
      name: "js-docs",
      metadata: { topic: "cheatsheet", "hnsw:space": "cosine" },
      embeddingFunction: null,
    });
    same(collection.name, "js-docs", "name");
    same(collection.metadata, { topic: "cheatsheet", "hnsw:space": "cosine" }, "metadata");
  });
  await run("createCollection existing -> ChromaUniqueError", async () => {
    await rejects(client.createCollection({ name: "js-docs", embeddingFunction: null }), "ChromaUniqueError", "dup");
  });
  await run("getCollection", async () => {
    const got = await client.getCollection({ name: "js-docs", embeddingFunction: null });
    same(got.id, collection.id, "id");
  });
  await run("getCollection missing -> ChromaNotFoundError", async () => {
    await rejects(client.getCollection({ name: "no-such" }), "ChromaNotFoundError", "missing");
  });
  await run("getOrCreateCollection", async () => {
    const again = await client.getOrCreateCollection({ name: "js-docs", embeddingFunction: null });
    same(again.id, collection.id, "same collection");
    const other = await client.getOrCreateCollection({ name: "js-other", embeddingFunction: null });
    check(other.id !== collection.id, "new collection");
  });
  await run("listCollections / countCollections", async () => {
    const names = (await client.listCollections()).map((c) => c.name);
    check(names.includes("js-docs") && names.includes("js-other"), "both listed");
    same(await client.countCollections(), before + 2, "count");
  });

  await run("add single", async () => {
    await collection.add({
      ids: ["a"],
      embeddings: [[1, 0, 0]],
      metadatas: [{ genre: "news", year: 2020 }],
      documents: ["the first document"],
    });
  });
  await run("add batch", async () => {
    await collection.add({
      ids: ["b", "c", "d"],
      embeddings: [
        [0, 1, 0],
        [0, 0, 1],
        [1, 1, 0],
      ],
      metadatas: [{ genre: "sport", year: 2021 }, { genre: "news", year: 2022 }, { genre: "tech", tags: ["x", "y"] }],
      documents: ["second document", "third one", "fourth document"],
    });
  });
  await run("wrong dimension -> ChromaClientError", async () => {
    const error = await rejects(collection.add({ ids: ["z"], embeddings: [[1, 2]] }), "ChromaClientError", "dim");
    check(String(error.message).includes("dimension"), "message mentions dimension");
  });
  await run("upsert", async () => {
    await collection.upsert({
      ids: ["d", "e"],
      embeddings: [
        [1, 1, 1],
        [0.5, 0.5, 0],
      ],
      metadatas: [{ genre: "science" }, { genre: "news", year: 2023 }],
      documents: ["fourth, upserted", "fifth document"],
    });
  });
  await run("count", async () => same(await collection.count(), 5, "count"));
  await run("get by ids", async () => {
    const got = await collection.get({ ids: ["b", "a"], include: ["documents", "metadatas", "embeddings"] });
    same(got.ids, ["a", "b"], "storage order");
    same(got.documents, ["the first document", "second document"], "documents");
    same(got.embeddings, [
      [1, 0, 0],
      [0, 1, 0],
    ], "embeddings");
    same(got.rows().length, 2, "rows()");
  });
  await run("get with where / whereDocument / limit / offset", async () => {
    const news = await collection.get({ where: { genre: "news" } });
    same(news.ids, ["a", "c", "e"], "where");
    const docs = await collection.get({ whereDocument: { $contains: "document" }, limit: 2, offset: 1 });
    same(docs.ids, ["b", "e"], "whereDocument + paging");
    const merged = await collection.get({ ids: ["d"] });
    same(merged.metadatas, [{ genre: "science", tags: ["x", "y"] }], "upsert merged metadata");
  });
  await run("peek", async () => {
    const peeked = await collection.peek({ limit: 2 });
    same(peeked.ids, ["a", "b"], "peek ids");
  });
  await run("query", async () => {
    const result = await collection.query({ queryEmbeddings: [[1, 0, 0]], nResults: 2 });
    same(result.ids, [["a", "e"]], "nearest (cosine)");
    check(Math.abs(result.distances[0][0]) < 1e-6, "distance 0");
    same(result.rows()[0].length, 2, "rows()");
  });
  await run("query with where", async () => {
    const result = await collection.query({
      queryEmbeddings: [
        [1, 0, 0],
        [0, 0, 1],
      ],
      nResults: 5,
      where: { $and: [{ genre: "news" }, { year: { $gte: 2021 } }] },
      include: ["documents", "metadatas", "distances", "embeddings"],
    });
    same(result.ids, [
      ["e", "c"],
      ["c", "e"],
    ], "filtered neighbours");
    same(result.documents[1][0], "third one", "document");
  });
  await run("update", async () => {
    await collection.update({ ids: ["a", "unknown-id"], metadatas: [{ year: 2030, extra: true }, { year: 1 }] });
    let got = await collection.get({ ids: ["a"], include: ["documents", "metadatas", "embeddings"] });
    same(got.metadatas, [{ genre: "news", year: 2030, extra: true }], "merged metadata");
    same(got.embeddings, [[1, 0, 0]], "embedding kept");
    await collection.update({ ids: ["a"], embeddings: [[0, 0, 2]], documents: ["first, updated"] });
    got = await collection.get({ ids: ["a"], include: ["documents", "metadatas", "embeddings"] });
    same(got.documents, ["first, updated"], "document");
    same(got.embeddings, [[0, 0, 2]], "embedding");
    same(got.metadatas, [{ genre: "news", year: 2030, extra: true }], "metadata kept");
  });
  await run("delete by ids", async () => {
    await collection.delete({ ids: ["b"] });
    same(await collection.count(), 4, "count after delete");
  });
  await run("delete by where", async () => {
    await collection.delete({ where: { genre: "news" } });
    same((await collection.get()).ids, ["d"], "left");
  });
  await run("modify", async () => {
    await collection.modify({ name: "js-renamed", metadata: { topic: "renamed" } });
    const got = await client.getCollection({ name: "js-renamed", embeddingFunction: null });
    same(got.metadata, { topic: "renamed" }, "metadata");
  });
  await run("deleteCollection", async () => {
    await client.deleteCollection({ name: "js-renamed" });
    await client.deleteCollection({ name: "js-other" });
    same(await client.countCollections(), before, "none left");
    await rejects(client.deleteCollection({ name: "js-renamed" }), "ChromaNotFoundError", "delete missing");
  });
  await run("reset disabled -> ChromaForbiddenError", async () => {
    await rejects(client.reset(), "ChromaForbiddenError", "reset");
  });
  console.log("ALL OK");
} catch (error) {
  console.log(`FAILED at ${step}: ${error && error.stack ? error.stack : error}`);
  process.exit(1);
}
