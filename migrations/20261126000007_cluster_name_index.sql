-- The API checks a new cluster's name against the org's clusters; without this index that check reads every
-- cluster of the org.
CREATE INDEX clusters_org_name ON clusters (org_id, name);
CREATE INDEX topics_cluster ON topics (cluster_id, status);
