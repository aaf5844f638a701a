"""DMARC tests' shared helpers: aggregate reports built from RFC 7489 appendix C's shape, packed
the ways receivers send them (gzip, zip, an email with the report attached)."""
import io
import zipfile
from email.message import EmailMessage


def report_xml(records=2, org="mail.example.net", report_id="r-1", domain="example.com", namespace="",
               begin=1700000000, end=1700086399, count=3):
    rows = "".join(f"""
  <record>
    <row><source_ip>192.0.2.{i % 250 + 1}</source_ip><count>{count}</count>
      <policy_evaluated><disposition>none</disposition><dkim>{'pass' if i % 2 == 0 else 'fail'}</dkim>
        <spf>fail</spf><reason><type>forwarded</type><comment>list</comment></reason></policy_evaluated></row>
    <identifiers><header_from>{domain}</header_from><envelope_from>bounce.{domain}</envelope_from></identifiers>
    <auth_results><dkim><domain>{domain}</domain><selector>loft1</selector><result>pass</result></dkim>
      <spf><domain>bounce.{domain}</domain><result>softfail</result></spf></auth_results>
  </record>""" for i in range(records))
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feedback{xmlns}>
  <report_metadata><org_name>{org}</org_name><email>noreply@{org}</email><report_id>{report_id}</report_id>
    <date_range><begin>{begin}</begin><end>{end}</end></date_range></report_metadata>
  <policy_published><domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>none</p></policy_published>{rows}
</feedback>
""".encode()


def zipped(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def email_with(attachment, ctype="application/gzip", name="mail.example.net!example.com!1700000000!1700086399.xml.gz"):
    message = EmailMessage()
    message["From"] = "noreply-dmarc@mail.example.net"
    message["To"] = "dmarc@example.com"
    message["Subject"] = "Report Domain: example.com Submitter: mail.example.net Report-ID: r-1"
    message.set_content("This is an aggregate report from mail.example.net.")
    maintype, subtype = ctype.split("/")
    message.add_attachment(attachment, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes()
