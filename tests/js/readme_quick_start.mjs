// The README's quick start for the npm client, in a shell after `eval $(cogwheel env)`: the client takes the
// `/v1` prefix in its base URL and trusts the local CA through NODE_EXTRA_CA_CERTS; the file output is a
// FileOutput read with `await output.blob()`, or by iterating over it.
// Env (from `cogwheel env`): REPLICATE_BASE_URL, REPLICATE_API_TOKEN, NODE_EXTRA_CA_CERTS; COGWHEEL_OUT: where
// to write the PNG.
import { writeFile } from "node:fs/promises";
import Replicate from "replicate";

const replicate = new Replicate({ baseUrl: process.env.REPLICATE_BASE_URL + "/v1" });

const output = await replicate.run("cogwheel/image-generator", { input: { seed: 7 } });
const blob = await output.blob();
await writeFile(process.env.COGWHEEL_OUT, Buffer.from(await blob.arrayBuffer()));

const again = await replicate.run("cogwheel/image-generator", { input: { seed: 7 } });
const chunks = [];
for await (const chunk of again) {
  chunks.push(chunk);
}

console.log(JSON.stringify({
  kind: output.constructor.name,
  url: output.url().href,
  type: blob.type,
  streamed: Buffer.concat(chunks).toString("base64"),
}));
