import type { RegistryData, RepositoryData } from '../catalog/types.ts';
import { imagePages, renderAllTags, renderCatalog, renderImage, renderRepository, TAGS_ON_REPOSITORY_PAGE, type ImagePage, type PageOptions } from './render.ts';

// The default pages as Eleventy virtual templates (JavaScript templates: they render the same
// whatever template languages the site is set up with). They read the `registry` global data, so
// a site can replace any of them with its own template reading the same data.

export interface PagesConfig {
  /** `/images/`: the catalog's URL; repositories below it. */
  path: string;
  /** A layout of the site's own to wrap the pages in (they then render their content only). */
  layout?: string;
  /** The site's name in the pages' header and titles. */
  title: string;
}

/** The bits of Eleventy's config API the pages use. */
export interface EleventyTemplatesLike {
  addTemplate(virtualPath: string, content: unknown, data?: Record<string, unknown>): void;
}

interface PageData {
  registry: RegistryData;
  repository?: RepositoryData;
  image?: ImagePage;
}

export function addRegistryPages(eleventyConfig: EleventyTemplatesLike, config: PagesConfig): void {
  const o: PageOptions = { path: config.path, standalone: config.layout === undefined, title: config.title };
  const common = {
    eleventyExcludeFromCollections: true,
    ...(config.layout ? { layout: config.layout } : {}),
  };
  eleventyConfig.addTemplate('registrish/catalog.11ty.js', {
    data: { ...common, permalink: config.path, title: 'Container images' },
    render: (d: PageData) => renderCatalog(d.registry, o),
  });
  eleventyConfig.addTemplate('registrish/repository.11ty.js', {
    data: {
      ...common,
      pagination: { data: 'registry.repositories', size: 1, alias: 'repository', addAllPagesToCollections: false },
      permalink: (d: PageData) => d.repository!.url,
      eleventyComputed: { title: (d: PageData) => d.repository?.name },
    },
    render: (d: PageData) => renderRepository(d.registry, d.repository!, o),
  });
  // Every tag on one page, for repositories with more than their page lists.
  eleventyConfig.addTemplate('registrish/tags.11ty.js', {
    data: {
      ...common,
      pagination: {
        data: 'registry.repositories',
        size: 1,
        alias: 'repository',
        addAllPagesToCollections: false,
        before: (repos: RepositoryData[]) => repos.filter((r) => r.tags.length > TAGS_ON_REPOSITORY_PAGE),
      },
      permalink: (d: PageData) => `${d.repository!.url}tags/`,
      eleventyComputed: { title: (d: PageData) => (d.repository ? `Tags of ${d.repository.name}` : undefined) },
    },
    render: (d: PageData) => renderAllTags(d.registry, d.repository!, o),
  });
  // A page per image (tags that point at the same manifest share it): platforms, layers, labels.
  eleventyConfig.addTemplate('registrish/image.11ty.js', {
    data: {
      ...common,
      pagination: { data: 'registry.repositories', size: 1, alias: 'image', addAllPagesToCollections: false, before: imagePages },
      permalink: (d: PageData) => d.image!.tags[0]!.url,
      eleventyComputed: { title: (d: PageData) => (d.image ? `${d.image.repository.name}:${d.image.tags[0]!.name}` : undefined) },
    },
    render: (d: PageData) => renderImage(d.registry, d.image!, o),
  });
}
