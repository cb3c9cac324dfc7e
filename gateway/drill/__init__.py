"""`lifeline drill`: a disaster-recovery test while the office works, and the report an auditor keeps."""
