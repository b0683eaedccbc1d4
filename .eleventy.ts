import registrish from './src/index.ts';

// This repository's own site: a static registry built from images.json, plus a front page.
export default function (eleventyConfig: any) {
  eleventyConfig.addPlugin(registrish, {
    images: 'images.json',
    hosts: ['netlify'],
  });
  return {
    dir: { input: 'site', output: '_site' },
  };
}
