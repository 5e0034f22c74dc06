// face-api's expression net in its original runtime (TF.js in Node) on the reference crops.
//
//   node scripts/reference/faceapi.js CROPS_DIR ANSWER.json     (with NODE_PATH from faceapi_env.sh)
//
// CROPS_DIR is what `reference_io.py crops` wrote. Each crop is given to
// faceExpressionNet.predictExpressions as an int32 tf.tensor3d of its RGB pixels (face-api's
// tensor path: pad to a square, resize to 112x112, subtract the mean RGB), on TF.js's pure-JS
// "cpu" backend. Probabilities are written in emovlm's class order.
'use strict';

const fs = require('fs');
const path = require('path');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const CLASSES = {
  angry: 'angry', disgust: 'disgusted', fear: 'fearful', happy: 'happy',
  sad: 'sad', surprise: 'surprised', neutral: 'neutral',
};

async function main(cropsDir, answerFile) {
  const tf = faceapi.tf;
  await tf.setBackend('cpu');
  await tf.ready();
  const packageDir = path.dirname(require.resolve('@vladmandic/face-api/package.json'));
  await faceapi.nets.faceExpressionNet.loadFromDisk(path.join(packageDir, 'model'));
  const sizes = JSON.parse(fs.readFileSync(path.join(cropsDir, 'crops.json'), 'utf8'));
  const probabilities = {};
  for (const [name, [height, width]] of Object.entries(sizes)) {
    const pixels = fs.readFileSync(path.join(cropsDir, `${name}.rgb`));
    const crop = tf.tensor3d(Int32Array.from(pixels), [height, width, 3], 'int32');
    const expressions = await faceapi.nets.faceExpressionNet.predictExpressions(crop);
    crop.dispose();
    probabilities[name] = Object.values(CLASSES).map((own) => expressions[own]);
  }
  const version = (pkg) => require(`${pkg}/package.json`).version;
  const runtime = `@vladmandic/face-api ${version('@vladmandic/face-api')} `
    + 'faceExpressionNet.predictExpressions on a tf.tensor3d crop, '
    + `TF.js ${tf.version.tfjs} pure-JS '${tf.getBackend()}' backend in Node`;
  fs.writeFileSync(answerFile, `${JSON.stringify({ runtime, probabilities }, null, 1)}\n`);
}

main(process.argv[2], process.argv[3]).catch((error) => {
  console.error(error);
  process.exit(1);
});
