// A local Netlify build plugin: restores the registrish cache before the build and saves it
// after, using Netlify's own build cache (utils.cache), so blobs are not downloaded again.
export const onPreBuild = async ({ inputs, utils }) => {
  for (const p of inputs.paths) {
    if (await utils.cache.restore(p)) console.log(`[registrish] restored ${p} from the Netlify build cache`);
  }
};

export const onPostBuild = async ({ inputs, utils }) => {
  for (const p of inputs.paths) {
    if (await utils.cache.save(p)) console.log(`[registrish] saved ${p} to the Netlify build cache`);
  }
};
