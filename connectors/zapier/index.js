'use strict';

const zapier = require('zapier-platform-core');

const authentication = require('./authentication');
const { includeBearerToken, handleErrors } = require('./lib/api');
const newLink = require('./triggers/new_link');
const linkClicked = require('./triggers/link_clicked');
const shortenLink = require('./creates/shorten_link');
const findLink = require('./searches/find_link');

module.exports = {
  version: require('./package.json').version,
  platformVersion: zapier.version,
  authentication,
  beforeRequest: [includeBearerToken],
  afterResponse: [handleErrors],
  triggers: {
    [newLink.key]: newLink,
    [linkClicked.key]: linkClicked,
  },
  creates: {
    [shortenLink.key]: shortenLink,
  },
  searches: {
    [findLink.key]: findLink,
  },
};
