-- llmlens schema, version 4: trace_index keeps the insert deduplication window that the other
-- tables have had since version 1. The writer finishes a commit that failed part-way (a full disk,
-- say) by inserting the same blocks again with the same deduplication tokens; without the window,
-- trace_index's rows of blocks that had already landed would be stored, and summed, twice.
-- (A Replicated table on a cluster deduplicates by replicated_deduplication_window; this one is inert there.)

ALTER TABLE {local:trace_index}{on_cluster} MODIFY SETTING non_replicated_deduplication_window = 1000;
