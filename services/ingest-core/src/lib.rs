//! What upload-api and stream-bridge share: image sniffing, ids, the S3 key
//! layout, the DynamoDB item, the event record and the store-one-image
//! operation (../shared/DESIGN.md, "Data contracts"). Nothing is built here
//! yet; the upload path brings it.
