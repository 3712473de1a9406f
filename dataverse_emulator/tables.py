"""Every table the emulator serves, with its columns. Pure data built from `model.py`.

Relationships (names, navigation properties, cascades) are derived from the lookups here by relationships.py;
state/status options live in states.py. Column lengths follow Microsoft's table reference where it gives them.
"""

from __future__ import annotations

from .model import (
    BOOLEAN,
    CUSTOMER,
    DATETIME,
    ENTITYNAME,
    INTEGER,
    LOOKUP,
    MEMO,
    MONEY,
    OWNER,
    STATE,
    STATUS,
    UNIQUEID,
    Attr,
    Entity,
    address,
    col,
    entity,
    merge_columns,
    picklist,
    regarding,
    ro,
    state_status_attrs,
    system,
)

_HUGE = 1073741823
_CUSTOMERS = ("account", "contact")
_REGARDING = ("account", "contact", "lead", "incident", "opportunity")
_EMAILS = [col("emailaddress1", max_length=100, display="Email", schema_name="EMailAddress1"),
           col("emailaddress2", max_length=100, display="Email Address 2", schema_name="EMailAddress2"),
           col("emailaddress3", max_length=100, display="Email Address 3", schema_name="EMailAddress3")]
_PHONES = [col("telephone1", max_length=50, display="Business Phone"), col("telephone2", max_length=50),
           col("telephone3", max_length=50)]

CONTACT = entity(
    "contact", "contacts", "contactid", "fullname", 2,
    system("contact", "contactid") + merge_columns("contact") + [
        col("firstname", max_length=50, display="First Name"), col("middlename", max_length=50),
        col("lastname", max_length=50, display="Last Name", required="ApplicationRequired"),
        ro("fullname", max_length=160, display="Full Name"), col("salutation"), col("jobtitle", max_length=100),
        *_EMAILS, *_PHONES, col("mobilephone", max_length=50), col("fax", max_length=50),
        *address("address1"), *address("address2"),
        col("donotemail", BOOLEAN), col("donotphone", BOOLEAN), col("donotbulkemail", BOOLEAN),
        col("donotpostalmail", BOOLEAN), col("birthdate", DATETIME),
        picklist("gendercode", {1: "Male", 2: "Female"}, display="Gender"),
        picklist("preferredcontactmethodcode", {1: "Any", 2: "Email", 3: "Phone", 4: "Fax", 5: "Mail"},
                 display="Preferred Method of Contact"),
        col("description", MEMO), col("parentcustomerid", CUSTOMER, targets=_CUSTOMERS, display="Company Name"),
        col("new_isvip", BOOLEAN, display="Is VIP"), col("new_ismember", BOOLEAN, display="Is Member"),
        col("new_membershipnumber"), col("new_lastcontacteddate", DATETIME),
    ],
    schema="Contact", collection="Contacts", display="Contact",
    merged_state=(1, 2), parent_attr="parentcustomerid",
)

ACCOUNT = entity(
    "account", "accounts", "accountid", "name", 1,
    system("account", "accountid") + merge_columns("account") + [
        col("name", max_length=160, display="Account Name", required="ApplicationRequired"),
        col("accountnumber", max_length=20, display="Account Number"), *_EMAILS, *_PHONES,
        col("fax", max_length=50), col("websiteurl", max_length=200),
        *address("address1"), *address("address2"),
        col("donotemail", BOOLEAN), col("donotphone", BOOLEAN), col("revenue", MONEY, display="Annual Revenue"),
        col("numberofemployees", INTEGER),
        picklist("industrycode", {1: "Accounting", 2: "Agriculture and Non-petrol Natural Resource Extraction",
                                  3: "Broadcasting Printing and Publishing", 4: "Brokers", 5: "Building Supply Retail",
                                  6: "Business Services", 7: "Consulting"}, display="Industry"),
        col("description", MEMO), col("parentaccountid", LOOKUP, targets=("account",), display="Parent Account"),
        col("primarycontactid", LOOKUP, targets=("contact",), display="Primary Contact"),
        col("new_isvip", BOOLEAN, display="Is VIP"),
    ],
    schema="Account", collection="Accounts", display="Account",
    merged_state=(1, 2), parent_attr="parentaccountid",
)

LEAD = entity(
    "lead", "leads", "leadid", "fullname", 4,
    system("lead", "leadid") + merge_columns("lead") + [
        col("subject", max_length=300, display="Topic"), col("firstname", max_length=50),
        col("lastname", max_length=50), ro("fullname", max_length=160), col("companyname", max_length=100),
        *_EMAILS, *_PHONES, col("mobilephone", max_length=50), *address("address1"),
        col("donotemail", BOOLEAN), col("description", MEMO),
        col("parentaccountid", LOOKUP, targets=("account",)), col("parentcontactid", LOOKUP, targets=("contact",)),
    ],
    schema="Lead", collection="Leads", display="Lead",
    merged_state=(2, 7),  # Disqualified, status Canceled
)

INCIDENT = entity(
    "incident", "incidents", "incidentid", "title", 112,
    system("incident", "incidentid") + merge_columns("incident") + [
        col("title", max_length=200, display="Case Title"), ro("ticketnumber"), col("description", MEMO),
        picklist("prioritycode", {1: "High", 2: "Normal", 3: "Low"}, display="Priority"),
        col("customerid", CUSTOMER, targets=_CUSTOMERS, display="Customer"),
        col("parentcaseid", LOOKUP, targets=("incident",), display="Parent Case"),
    ],
    schema="Incident", collection="Incidents", display="Case",
    merged_state=(2, 2000), parent_attr="parentcaseid",  # Canceled, status Merged
)

QUOTE = entity(
    "quote", "quotes", "quoteid", "name", 1084,
    system("quote", "quoteid") + [
        col("name", max_length=300), col("totalamount", MONEY), col("description", MEMO),
        col("customerid", CUSTOMER, targets=_CUSTOMERS),
    ],
    schema="Quote", collection="Quotes", display="Quote",
    active_states=frozenset({0, 1}),  # Draft (0) and Active (1) are open; Won (2) and Closed (3) are not
)

OPPORTUNITY = entity(
    "opportunity", "opportunities", "opportunityid", "name", 3,
    system("opportunity", "opportunityid") + [
        col("name", max_length=300, display="Topic"), col("description", MEMO),
        col("estimatedvalue", MONEY, display="Est. Revenue"), col("estimatedclosedate", DATETIME),
        col("customerid", CUSTOMER, targets=_CUSTOMERS, display="Potential Customer"),
        col("parentaccountid", LOOKUP, targets=("account",), display="Account"),
        col("parentcontactid", LOOKUP, targets=("contact",), display="Contact"),
    ],
    schema="Opportunity", collection="Opportunities", display="Opportunity", display_collection="Opportunities",
)

LIST = entity(
    "list", "lists", "listid", "listname", 4300,
    system("list", "listid") + [
        col("listname", max_length=128, display="Name"), col("type", BOOLEAN),
        picklist("createdfromcode", {1: "Account", 2: "Contact", 4: "Lead"}, display="Targeted At"),
        ro("membercount", INTEGER), col("description", MEMO),
    ],
    schema="List", collection="Lists", display="Marketing List",
)

LISTMEMBER = entity(
    "listmember", "listmembers", "listmemberid", "listmemberid", 4301,
    [ro("listmemberid", UNIQUEID), ro("createdon", DATETIME), ro("modifiedon", DATETIME),
     col("listid", LOOKUP, targets=("list",)), col("entityid", LOOKUP, targets=("account", "contact", "lead"))],
    schema="ListMember", collection="ListMembers", display="Marketing List Member", ownership="None",
    is_intersect=True,
)


def _activity(name: str, set_name: str, otc: int, schema: str, display: str, extra: list[Attr]) -> Entity:
    return entity(
        name, set_name, "activityid", "subject", otc,
        system(name, "activityid") + [
            col("subject", max_length=200, display="Subject", required="ApplicationRequired"),
            col("description", MEMO, max_length=100000), col("scheduledend", DATETIME, display="Due"),
            col("actualend", DATETIME), regarding(name, _REGARDING), *extra,
        ],
        schema=schema, collection=schema + "s", display=display, is_activity=True,
    )


TASK = _activity("task", "tasks", 4212, "Task", "Task", [])
PHONECALL = _activity("phonecall", "phonecalls", 4210, "PhoneCall", "Phone Call",
                      [col("phonenumber", max_length=200), col("directioncode", BOOLEAN, display="Direction")])
EMAIL = _activity("email", "emails", 4202, "Email", "Email",
                  [col("sender", max_length=250), col("torecipients", max_length=500),
                   col("directioncode", BOOLEAN, display="Direction")])
APPOINTMENT = _activity("appointment", "appointments", 4201, "Appointment", "Appointment",
                        [col("location", max_length=200), col("scheduledstart", DATETIME, display="Start Time")])

ANNOTATION = entity(
    "annotation", "annotations", "annotationid", "subject", 5,
    system("annotation", "annotationid", state_status=False) + [
        col("subject", max_length=500, display="Title"), col("notetext", MEMO, max_length=100000,
                                                             display="Description"),
        col("objectid", LOOKUP, targets=_REGARDING, navs=tuple(f"objectid_{t}" for t in _REGARDING),
            display="Regarding"),
        ro("objecttypecode", ENTITYNAME, display="Object Type"),
        col("isdocument", BOOLEAN, display="Is Document"), col("filename", max_length=255),
    ],
    schema="Annotation", collection="Annotations", display="Note",
)

SYSTEMUSER = entity(
    "systemuser", "systemusers", "systemuserid", "fullname", 8,
    [ro("systemuserid", UNIQUEID), ro("createdon", DATETIME), ro("modifiedon", DATETIME),
     col("fullname", max_length=200), col("domainname", max_length=1024),
     col("internalemailaddress", max_length=100), col("isdisabled", BOOLEAN)],
    schema="SystemUser", collection="SystemUsers", display="User", ownership="BusinessOwned",
)


def _view(name: str, set_name: str, pid: str, otc: int, schema: str, display: str, owned: bool) -> Entity:
    attrs = [ro(pid, UNIQUEID), ro("createdon", DATETIME), ro("modifiedon", DATETIME),
             col("name", max_length=200), col("returnedtypecode", ENTITYNAME),
             col("fetchxml", MEMO, max_length=_HUGE), col("layoutxml", MEMO, max_length=_HUGE),
             col("querytype", INTEGER), col("isdefault", BOOLEAN),
             Attr("statecode", STATE, updatable=False, creatable=False),
             Attr("statuscode", STATUS, updatable=False, creatable=False)]
    if owned:
        attrs.append(col("ownerid", OWNER, targets=("systemuser",)))
    return entity(name, set_name, pid, "name", otc, attrs, schema=schema,
                  collection=schema.replace("Query", "Queries"), display=display,
                  ownership="UserOwned" if owned else "OrganizationOwned")


SAVEDQUERY = _view("savedquery", "savedqueries", "savedqueryid", 1039, "SavedQuery", "View", False)
USERQUERY = _view("userquery", "userqueries", "userqueryid", 4230, "UserQuery", "Saved View", True)

_READONLY_STATE = [Attr("statecode", STATE, updatable=False, creatable=False),
                   Attr("statuscode", STATUS, updatable=False, creatable=False)]
DUPLICATERULE = entity(
    "duplicaterule", "duplicaterules", "duplicateruleid", "name", 4414,
    system("duplicaterule", "duplicateruleid", state_status=False) + _READONLY_STATE + [
        col("name", max_length=160), col("description", MEMO), col("baseentityname", max_length=100),
        col("matchingentityname", max_length=100), col("iscasesensitive", BOOLEAN),
        col("excludeinactiverecords", BOOLEAN),
    ],
    schema="DuplicateRule", collection="DuplicateRules", display="Duplicate Detection Rule",
)

DUPLICATERULECONDITION = entity(
    "duplicaterulecondition", "duplicateruleconditions", "duplicateruleconditionid", "baseattributename", 4416,
    [ro("duplicateruleconditionid", UNIQUEID), ro("createdon", DATETIME), ro("modifiedon", DATETIME),
     col("baseattributename", max_length=50), col("matchingattributename", max_length=50),
     picklist("operatorcode", {0: "Exact Match", 1: "Same First Characters", 2: "Same Last Characters",
                               3: "Same Date", 4: "Same Date and Time", 5: "Exact Match (Pick List Label)",
                               6: "Exact Match (Pick List Value)"}),
     col("operatorparam", INTEGER), col("ignoreblankvalues", BOOLEAN),
     col("regardingobjectid", LOOKUP, targets=("duplicaterule",))],
    schema="DuplicateRuleCondition", collection="DuplicateRuleConditions", display="Duplicate Rule Condition",
    ownership="OrganizationOwned",
)

ASYNCOPERATION = entity(
    "asyncoperation", "asyncoperations", "asyncoperationid", "name", 4700,
    [ro("asyncoperationid", UNIQUEID), ro("createdon", DATETIME), ro("modifiedon", DATETIME),
     col("name", max_length=256),
     picklist("operationtype", {7: "Publish Duplicate Rule", 8: "Bulk Duplicate Detection", 13: "Bulk Delete"}),
     *state_status_attrs(), col("message", MEMO, max_length=_HUGE),
     col("friendlymessage", MEMO, max_length=_HUGE), col("startedon", DATETIME), col("completedon", DATETIME),
     col("ownerid", OWNER, targets=("systemuser",))],
    schema="AsyncOperation", collection="AsyncOperations", display="System Job",
)

DUPLICATERECORD = entity(
    "duplicaterecord", "duplicaterecords", "duplicateid", "duplicateid", 4415,
    [ro("duplicateid", UNIQUEID), ro("createdon", DATETIME),
     ro("asyncoperationid", LOOKUP, targets=("asyncoperation",)),
     ro("baserecordid", LOOKUP, targets=("account", "contact", "lead")),
     ro("duplicaterecordid", LOOKUP, targets=("account", "contact", "lead")),
     ro("duplicateruleid", LOOKUP, targets=("duplicaterule",))],
    schema="DuplicateRecord", collection="DuplicateRecords", display="Duplicate Record",
)

ALL: tuple[Entity, ...] = (
    CONTACT, ACCOUNT, LEAD, INCIDENT, QUOTE, LIST, LISTMEMBER, TASK, SYSTEMUSER, SAVEDQUERY, USERQUERY,
    DUPLICATERULE, DUPLICATERULECONDITION, ASYNCOPERATION, DUPLICATERECORD,
    PHONECALL, EMAIL, APPOINTMENT, ANNOTATION, OPPORTUNITY,
)
