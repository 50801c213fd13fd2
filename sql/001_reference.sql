-- Reference data: the vocabulary every relevé is written in.
-- Loaded from the versioned files in finops_dagster/reference/data by the reference_data asset,
-- except dim_application / dim_application_group, which come from the CMDB's application records.

CREATE SCHEMA IF NOT EXISTS finops;

CREATE TABLE finops.dim_domain (
    domain_id   text PRIMARY KEY,
    label       text NOT NULL
);

CREATE TABLE finops.dim_family (
    family_id   text PRIMARY KEY,
    domain_id   text NOT NULL REFERENCES finops.dim_domain (domain_id),
    label       text NOT NULL
);

CREATE TABLE finops.dim_product (
    product_id  text PRIMARY KEY,
    family_id   text NOT NULL REFERENCES finops.dim_family (family_id),
    label       text NOT NULL,
    usage_unit  text NOT NULL
);

CREATE TABLE finops.dim_application_group (
    group_id    text PRIMARY KEY,
    label       text NOT NULL
);

CREATE TABLE finops.dim_application (
    application_id  text PRIMARY KEY,
    label           text NOT NULL,
    group_id        text NOT NULL REFERENCES finops.dim_application_group (group_id),
    source          text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- A price per product, valid for whole months: valid_from inclusive, valid_to exclusive (NULL = open).
-- The loader refuses overlapping periods for one product.
CREATE TABLE finops.rate_card (
    product_id  text NOT NULL REFERENCES finops.dim_product (product_id),
    valid_from  date NOT NULL CHECK (valid_from = date_trunc('month', valid_from)),
    valid_to    date CHECK (valid_to IS NULL OR (valid_to > valid_from AND valid_to = date_trunc('month', valid_to))),
    unit_cost   numeric(24, 6) NOT NULL CHECK (unit_cost >= 0),
    currency    char(3) NOT NULL,
    version     text NOT NULL,
    PRIMARY KEY (product_id, valid_from)
);

-- Rules that tie a source record to an application when the source itself does not say.
-- The first matching rule by ascending priority wins; "pattern" is a regular expression on "field".
CREATE TABLE finops.application_mapping_rule (
    rule_id         text PRIMARY KEY,
    domain_id       text NOT NULL REFERENCES finops.dim_domain (domain_id),
    field           text NOT NULL,
    pattern         text NOT NULL,
    application_id  text NOT NULL,
    priority        integer NOT NULL
);

-- Which version of each reference file is loaded, so a run records what it priced with.
CREATE TABLE finops.reference_version (
    kind        text PRIMARY KEY,
    version     text NOT NULL,
    checksum    text NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT now()
);
