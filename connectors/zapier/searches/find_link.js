'use strict';

const { LINK_FIELDS, SAMPLE_LINK, listLinks } = require('../lib/links');

const PAGES = 10; // at most 1,000 links, newest first

// The broker stores destinations with the scheme and host in lowercase; compare both as given and normalised.
const destinations = (given) => {
  try {
    return [given, new URL(given).href];
  } catch {
    return [given];
  }
};

// The API has no filter parameters: page through the links and match here. Slugs match regardless of case,
// as the broker treats them.
const perform = async (z, bundle) => {
  const slug = (bundle.inputData.slug || '').toLowerCase();
  const destination = bundle.inputData.destination || '';
  const wanted = destinations(destination);
  const matches = (link) =>
    (!slug || link.slug.toLowerCase() === slug) && (!destination || wanted.includes(link.destination));
  if (!slug && !destination) {
    throw new z.errors.Error('Give a slug or a destination URL to search for.', 'invalid_request', 400);
  }
  let startingAfter;
  for (let page = 0; page < PAGES; page += 1) {
    const params = startingAfter ? { limit: 100, starting_after: startingAfter } : { limit: 100 };
    const { data, has_more: hasMore } = await listLinks(z, bundle, params);
    const found = data.filter(matches);
    if (found.length || !hasMore || !data.length) {
      return found;
    }
    startingAfter = data[data.length - 1].id;
  }
  return [];
};

module.exports = {
  key: 'find_link',
  noun: 'Link',
  display: {
    label: 'Find Link',
    description: 'Finds a short link by its slug or its destination URL.',
  },
  operation: {
    inputFields: [
      { key: 'slug', label: 'Slug', type: 'string', required: false },
      {
        key: 'destination',
        label: 'Destination URL',
        type: 'string',
        required: false,
        helpText: 'The full URL the link points to.',
      },
    ],
    perform,
    sample: SAMPLE_LINK,
    outputFields: LINK_FIELDS,
  },
};
