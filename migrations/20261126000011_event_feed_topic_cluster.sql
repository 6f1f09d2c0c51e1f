-- The event feed's cluster filter (GET /v1/events?cluster_id=) finds a cluster's topics in the event store
-- itself (their TopicRequested names the cluster), not in the read model, which may not have the topic yet when
-- its first event is already visible to a follower.
CREATE INDEX events_topic_cluster ON events ((payload -> 'TopicRequested' ->> 'cluster_id'))
    WHERE aggregate_type = 'topic' AND sequence = 1;
